//! Prometheus metrics. Every family is registered once in one process-wide registry
//! ([`metrics`]), so counters outlive config generations. Label values are bounded:
//! endpoint, upstream and plugin names come from the config, models from the config or
//! the catalogue (anything else is `other`), plus status class, error code and outcome —
//! never key values, users, request ids or text (client key *names*, from the config, label the
//! per-key usage counters). Handles whose labels are known before a
//! request (per upstream, per endpoint) are resolved once ([`UpstreamMetrics`]); the
//! rest are looked up by `&str` without allocating once the series exists. Gauges that
//! describe state (cool-down, open streams, catalogue) are set at scrape time by whoever
//! owns that state. Process metrics come from `/proc/self`.

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{
    CounterVec, Encoder, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::sync::LazyLock;

/// Buckets that resolve sub-millisecond gateway overhead and multi-minute streams.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 120.0, 300.0, 600.0,
];

/// Buckets for plugin calls (bounded by their timeout, usually well under a second).
const PLUGIN_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
];

/// The outcome of one upstream attempt, as the `outcome` label spells it.
pub const OUTCOMES: [&str; 8] = [
    "ok",
    "connect_error",
    "timeout",
    "status_5xx",
    "status_429",
    "exchange_error",
    "stream_error",
    "untranslatable",
];

/// Why a stream ended early, as the `reason` label spells it.
pub const STREAM_FAILURES: [&str; 4] = ["upstream_error", "idle_timeout", "plugin", "shutdown"];

/// Why the gateway closed a client connection: `header` (the request head did not
/// arrive in `server.header_timeout`), `idle` (nothing between requests for
/// `server.idle_timeout`), `body` (a request body stalled for `server.body_timeout`),
/// `write` (the client stopped reading for `server.write_timeout`).
pub const CLIENT_TIMEOUTS: [&str; 4] = ["header", "idle", "body", "write"];

/// Every metric family of the gateway.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// `switchyard_requests_total{endpoint,model,status_class}`
    pub requests: IntCounterVec,
    /// `switchyard_request_errors_total{endpoint,code}`
    pub request_errors: IntCounterVec,
    /// `switchyard_requests_in_flight{endpoint}`
    pub requests_in_flight: IntGaugeVec,
    /// `switchyard_request_duration_seconds{endpoint,model}`
    pub request_duration: HistogramVec,
    /// `switchyard_stream_time_to_first_byte_seconds{model}`
    pub stream_ttfb: HistogramVec,
    /// `switchyard_streams_in_flight`
    pub streams_in_flight: IntGauge,
    stream_chunks: IntCounterVec,
    streams_failed: IntCounterVec,
    attempts: IntCounterVec,
    failovers: IntCounterVec,
    retry_after: IntCounterVec,
    /// `switchyard_upstream_cooldown{upstream}` (set at scrape time)
    pub upstream_cooldown: IntGaugeVec,
    /// `switchyard_upstream_target_cooldown{upstream,model}` (set at scrape time)
    pub target_cooldown: IntGaugeVec,
    /// `switchyard_retry_budget_exhausted_total`
    pub retry_budget_exhausted: IntCounter,
    /// `switchyard_upstream_connections_opened_total`
    pub connections_opened: IntCounter,
    /// `switchyard_upstream_connections_reused_total`
    pub connections_reused: IntCounter,
    /// `switchyard_upstream_connections_open`
    pub connections_open: IntGauge,
    /// `switchyard_upstream_connection_retries_total`
    pub connections_retried: IntCounter,
    /// `switchyard_input_tokens_total{model,upstream}`
    pub input_tokens: IntCounterVec,
    /// `switchyard_output_tokens_total{model,upstream}`
    pub output_tokens: IntCounterVec,
    /// `switchyard_key_tokens_total{key}`: tokens (input + output) per client key name.
    pub key_tokens: IntCounterVec,
    /// `switchyard_key_spend_usd_total{key}`: spend per client key name, from `prices:`.
    pub key_spend: CounterVec,
    /// `switchyard_catalog_refreshes_total{upstream,outcome}`
    pub catalog_refreshes: IntCounterVec,
    /// `switchyard_catalog_models` (set at scrape time)
    pub catalog_models: IntGauge,
    /// `switchyard_catalog_list_age_seconds{upstream}` (set at scrape time)
    pub catalog_list_age: GaugeVec,
    /// `switchyard_plugin_calls_total{plugin,stage}`
    pub plugin_calls: IntCounterVec,
    /// `switchyard_plugin_rejections_total{plugin}`
    pub plugin_rejections: IntCounterVec,
    /// `switchyard_plugin_failures_total{plugin}`
    pub plugin_failures: IntCounterVec,
    /// `switchyard_plugin_duration_seconds{plugin}`
    pub plugin_duration: HistogramVec,
    /// `switchyard_access_log_dropped_total`
    pub access_log_dropped: IntCounter,
    /// `switchyard_export_dropped_total{sink}`
    pub export_dropped: IntCounterVec,
    /// `switchyard_export_records_total{sink,outcome}`
    pub export_records: IntCounterVec,
    /// `switchyard_export_batches_total{sink,outcome}`
    pub export_batches: IntCounterVec,
    /// `switchyard_client_connections_open`
    pub client_connections: IntGauge,
    /// `switchyard_client_connections_refused_total` (at `server.max_connections`)
    pub client_refused: IntCounter,
    /// `switchyard_client_timeouts_total{kind}`, by [`CLIENT_TIMEOUTS`]
    pub client_timeouts: [IntCounter; CLIENT_TIMEOUTS.len()],
    /// `switchyard_accept_errors_total`
    pub accept_errors: IntCounter,
    /// `switchyard_config_reloads_total{outcome}`: `[ok, error]`
    pub config_reloads: [IntCounter; 2],
    /// `switchyard_config_last_reload_success_timestamp_seconds` (start counts as one)
    pub config_last_reload_success: Gauge,
    /// `switchyard_state_up`: 1 while the shared store (Redis) answers, 0 while it does
    /// not (always 1 with `state.backend: memory`).
    pub state_up: IntGauge,
    /// `switchyard_state_fallbacks_total{what}`: decisions taken without the shared
    /// store because it did not answer in time.
    pub state_fallbacks: IntCounterVec,
    /// `switchyard_cache_lookups_total{result,tier}`: response-cache lookups (`hit`,
    /// `miss`, `bypass`) and the tier that answered a hit (`memory`, `redis`).
    pub cache_lookups: IntCounterVec,
    /// `switchyard_cache_stores_total{outcome}`: answers stored, or not (`too_large`,
    /// `incomplete`).
    pub cache_stores: IntCounterVec,
}

/// The process-wide metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

/// Pre-resolved handles for one upstream.
#[derive(Debug, Clone)]
pub struct UpstreamMetrics {
    attempts: [IntCounter; OUTCOMES.len()],
    /// Moves from this upstream to the next candidate.
    pub failovers: IntCounter,
    /// Of those, moves after a 429 that carried `Retry-After`.
    pub retries_after_retry_after: IntCounter,
    /// SSE events relayed from this upstream.
    pub stream_chunks: IntCounter,
    streams_failed: [IntCounter; STREAM_FAILURES.len()],
}

impl UpstreamMetrics {
    /// Counts one attempt with this outcome (one of [`OUTCOMES`]).
    pub fn attempt(&self, outcome: &str) {
        if let Some(i) = OUTCOMES.iter().position(|o| *o == outcome) {
            self.attempts[i].inc();
        }
    }

    /// Attempts with this outcome so far (one of [`OUTCOMES`]).
    pub fn attempts_of(&self, outcome: &str) -> u64 {
        OUTCOMES
            .iter()
            .position(|o| *o == outcome)
            .map_or(0, |i| self.attempts[i].get())
    }

    /// Counts a stream that ended early for this reason (one of [`STREAM_FAILURES`]).
    pub fn stream_failed(&self, reason: &str) {
        if let Some(i) = STREAM_FAILURES.iter().position(|r| *r == reason) {
            self.streams_failed[i].inc();
        }
    }
}

impl Metrics {
    /// Counts a client connection closed by a timeout of this kind (one of
    /// [`CLIENT_TIMEOUTS`]).
    pub fn client_timeout(&self, kind: &str) {
        if let Some(i) = CLIENT_TIMEOUTS.iter().position(|k| *k == kind) {
            self.client_timeouts[i].inc();
        }
    }
}

/// `2xx`, `4xx`, `5xx`… of a status code.
pub fn status_class(status: u16) -> &'static str {
    match status / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        _ => "5xx",
    }
}

impl Metrics {
    #[expect(
        clippy::expect_used,
        reason = "metric definitions are static and valid; a bad one fails every test at once"
    )]
    fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid counter");
            registry.register(Box::new(c.clone())).expect("unique name");
            c
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid gauge");
            registry.register(Box::new(g.clone())).expect("unique name");
            g
        };
        let histogram = |name: &str, help: &str, labels: &[&str], buckets: &[f64]| {
            let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
            let h = HistogramVec::new(opts, labels).expect("valid histogram");
            registry.register(Box::new(h.clone())).expect("unique name");
            h
        };
        let plain_counter =
            |name: &str, help: &str| counter(name, help, &[]).with_label_values::<&str>(&[]);
        let plain_gauge =
            |name: &str, help: &str| gauge(name, help, &[]).with_label_values::<&str>(&[]);

        gauge(
            "switchyard_build_info",
            "Build information (always 1).",
            &["version"],
        )
        .with_label_values(&[env!("CARGO_PKG_VERSION")])
        .set(1);
        let age = GaugeVec::new(
            Opts::new(
                "switchyard_catalog_list_age_seconds",
                "Seconds since each upstream's model list was last fetched.",
            ),
            &["upstream"],
        )
        .expect("valid gauge");
        registry
            .register(Box::new(age.clone()))
            .expect("unique name");
        let key_spend = CounterVec::new(
            Opts::new(
                "switchyard_key_spend_usd_total",
                "Spend per client key name, in US dollars, from the configured prices.",
            ),
            &["key"],
        )
        .expect("valid counter");
        registry
            .register(Box::new(key_spend.clone()))
            .expect("unique name");
        registry
            .register(Box::new(ProcessCollector::new()))
            .expect("unique name");
        Self {
            requests: counter(
                "switchyard_requests_total",
                "Data-plane requests answered.",
                &["endpoint", "model", "status_class"],
            ),
            request_errors: counter(
                "switchyard_request_errors_total",
                "Requests that failed, by OpenAI error code.",
                &["endpoint", "code"],
            ),
            requests_in_flight: gauge(
                "switchyard_requests_in_flight",
                "Requests being handled, streams until their last byte.",
                &["endpoint"],
            ),
            request_duration: histogram(
                "switchyard_request_duration_seconds",
                "Time from the request to the end of its response body.",
                &["endpoint", "model"],
                LATENCY_BUCKETS,
            ),
            stream_ttfb: histogram(
                "switchyard_stream_time_to_first_byte_seconds",
                "Time from the request to the first body byte of a stream.",
                &["model"],
                LATENCY_BUCKETS,
            ),
            streams_in_flight: plain_gauge("switchyard_streams_in_flight", "Open streams."),
            stream_chunks: counter(
                "switchyard_stream_chunks_total",
                "SSE events relayed to clients.",
                &["upstream"],
            ),
            streams_failed: counter(
                "switchyard_streams_failed_total",
                "Streams ended with an error event after they started.",
                &["upstream", "reason"],
            ),
            attempts: counter(
                "switchyard_upstream_attempts_total",
                "Upstream attempts, by outcome.",
                &["upstream", "outcome"],
            ),
            failovers: counter(
                "switchyard_upstream_failovers_total",
                "Requests moved on from this upstream to the next candidate.",
                &["upstream"],
            ),
            retry_after: counter(
                "switchyard_upstream_retry_after_total",
                "Requests moved on from this upstream after a 429 with Retry-After.",
                &["upstream"],
            ),
            upstream_cooldown: gauge(
                "switchyard_upstream_cooldown",
                "1 while the upstream sits out a cool-down (its connections fail: every model).",
                &["upstream"],
            ),
            target_cooldown: gauge(
                "switchyard_upstream_target_cooldown",
                "1 while one model of the upstream sits out a cool-down (429s, 5xx, timeouts, Retry-After).",
                &["upstream", "model"],
            ),
            retry_budget_exhausted: plain_counter(
                "switchyard_retry_budget_exhausted_total",
                "Failovers not attempted because the retry budget was spent.",
            ),
            connections_opened: plain_counter(
                "switchyard_upstream_connections_opened_total",
                "Upstream connections opened.",
            ),
            connections_reused: plain_counter(
                "switchyard_upstream_connections_reused_total",
                "Upstream requests sent on a pooled keep-alive connection.",
            ),
            connections_open: plain_gauge(
                "switchyard_upstream_connections_open",
                "Upstream connections open (busy or idle in the pool).",
            ),
            connections_retried: plain_counter(
                "switchyard_upstream_connection_retries_total",
                "Requests sent again on a new connection after a reused one closed unanswered.",
            ),
            input_tokens: counter(
                "switchyard_input_tokens_total",
                "Prompt tokens, as upstreams reported them.",
                &["model", "upstream"],
            ),
            output_tokens: counter(
                "switchyard_output_tokens_total",
                "Completion tokens, as upstreams reported them.",
                &["model", "upstream"],
            ),
            catalog_refreshes: counter(
                "switchyard_catalog_refreshes_total",
                "Model list fetches, by outcome.",
                &["upstream", "outcome"],
            ),
            catalog_models: plain_gauge(
                "switchyard_catalog_models",
                "Models listed in /v1/models.",
            ),
            catalog_list_age: age,
            key_tokens: counter(
                "switchyard_key_tokens_total",
                "Tokens (input + output) per client key name.",
                &["key"],
            ),
            key_spend,
            plugin_calls: counter(
                "switchyard_plugin_calls_total",
                "Plugin calls, by stage.",
                &["plugin", "stage"],
            ),
            plugin_rejections: counter(
                "switchyard_plugin_rejections_total",
                "Requests or streams a plugin rejected.",
                &["plugin"],
            ),
            plugin_failures: counter(
                "switchyard_plugin_failures_total",
                "Plugin errors, timeouts and panics.",
                &["plugin"],
            ),
            plugin_duration: histogram(
                "switchyard_plugin_duration_seconds",
                "Time in one plugin call.",
                &["plugin"],
                PLUGIN_BUCKETS,
            ),
            access_log_dropped: plain_counter(
                "switchyard_access_log_dropped_total",
                "Access-log lines dropped because the writer fell behind.",
            ),
            export_dropped: counter(
                "switchyard_export_dropped_total",
                "Request records dropped because a sink fell behind or was down.",
                &["sink"],
            ),
            export_records: counter(
                "switchyard_export_records_total",
                "Request records by what became of them: sent, queue_full, failed or rejected.",
                &["sink", "outcome"],
            ),
            export_batches: counter(
                "switchyard_export_batches_total",
                "Export batch attempts: sent, retried (failed, tried again) or failed (dropped).",
                &["sink", "outcome"],
            ),
            client_connections: plain_gauge(
                "switchyard_client_connections_open",
                "Client connections open on the data plane.",
            ),
            client_refused: plain_counter(
                "switchyard_client_connections_refused_total",
                "Client connections refused at server.max_connections.",
            ),
            client_timeouts: {
                let c = counter(
                    "switchyard_client_timeouts_total",
                    "Client connections closed by a timeout: header, idle, body or write.",
                    &["kind"],
                );
                CLIENT_TIMEOUTS.map(|kind| c.with_label_values(&[kind]))
            },
            accept_errors: plain_counter(
                "switchyard_accept_errors_total",
                "Failed accepts on the data plane (out of file descriptors and the like).",
            ),
            config_reloads: {
                let c = counter(
                    "switchyard_config_reloads_total",
                    "Config reloads (SIGHUP, POST /admin/reload, file watch), by outcome.",
                    &["outcome"],
                );
                ["ok", "error"].map(|o| c.with_label_values(&[o]))
            },
            config_last_reload_success: {
                let g = Gauge::new(
                    "switchyard_config_last_reload_success_timestamp_seconds",
                    "Unix time the config in use was loaded (at start, then at each successful reload).",
                )
                .expect("valid gauge");
                registry.register(Box::new(g.clone())).expect("unique name");
                g
            },
            state_up: plain_gauge(
                "switchyard_state_up",
                "1 while the shared state store (Redis) answers, 0 while it does not.",
            ),
            // Every series exists from the start (at 0), so rates and alerts see them.
            state_fallbacks: {
                let c = counter(
                    "switchyard_state_fallbacks_total",
                    "Limit, budget and cache decisions taken without the shared store (it did not answer in time).",
                    &["what"],
                );
                for what in ["rate_limiter", "token_limiter", "budget", "cache"] {
                    c.with_label_values(&[what]);
                }
                c
            },
            cache_lookups: {
                let c = counter(
                    "switchyard_cache_lookups_total",
                    "Response-cache lookups by result (hit, miss, bypass) and the tier that answered.",
                    &["result", "tier"],
                );
                for labels in [
                    ["hit", "memory"],
                    ["hit", "redis"],
                    ["miss", "none"],
                    ["bypass", "none"],
                ] {
                    c.with_label_values(&labels);
                }
                c
            },
            cache_stores: {
                let c = counter(
                    "switchyard_cache_stores_total",
                    "Answers offered to the response cache, by outcome (stored, too_large, incomplete).",
                    &["outcome"],
                );
                for outcome in ["stored", "too_large", "incomplete"] {
                    c.with_label_values(&[outcome]);
                }
                c
            },
            registry,
        }
    }

    /// Handles for one upstream (created on first use, then shared).
    pub fn upstream(&self, name: &str) -> UpstreamMetrics {
        UpstreamMetrics {
            attempts: OUTCOMES.map(|o| self.attempts.with_label_values(&[name, o])),
            failovers: self.failovers.with_label_values(&[name]),
            retries_after_retry_after: self.retry_after.with_label_values(&[name]),
            stream_chunks: self.stream_chunks.with_label_values(&[name]),
            streams_failed: STREAM_FAILURES
                .map(|r| self.streams_failed.with_label_values(&[name, r])),
        }
    }

    /// Every metric in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = Vec::with_capacity(16 * 1024);
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "metrics could not be encoded");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// `process_*` metrics from `/proc/self`, read at scrape time (Linux only; elsewhere
/// they stay 0).
#[derive(Debug)]
struct ProcessCollector {
    cpu: Gauge,
    rss: IntGauge,
    fds: IntGauge,
    max_fds: IntGauge,
    start: Gauge,
    descs: Vec<Desc>,
}

/// Clock ticks per second of `/proc/self/stat` times (`USER_HZ`, 100 on Linux ABIs).
const USER_HZ: f64 = 100.0;

impl ProcessCollector {
    #[expect(
        clippy::expect_used,
        reason = "metric definitions are static and valid"
    )]
    fn new() -> Self {
        let cpu = Gauge::new(
            "process_cpu_seconds_total",
            "User and system CPU time spent, in seconds.",
        )
        .expect("valid");
        let rss = IntGauge::new(
            "process_resident_memory_bytes",
            "Resident memory, in bytes.",
        )
        .expect("valid");
        let fds = IntGauge::new("process_open_fds", "Open file descriptors.").expect("valid");
        let max_fds =
            IntGauge::new("process_max_fds", "Most file descriptors allowed.").expect("valid");
        let start = Gauge::new(
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch, in seconds.",
        )
        .expect("valid");
        start.set(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
        );
        let descs = [
            cpu.desc(),
            rss.desc(),
            fds.desc(),
            max_fds.desc(),
            start.desc(),
        ]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
        Self {
            cpu,
            rss,
            fds,
            max_fds,
            start,
            descs,
        }
    }

    fn update(&self) {
        if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
            // Fields after the `(comm)`, which may itself contain spaces.
            let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
            let fields: Vec<&str> = after.split_whitespace().collect();
            // utime and stime are fields 14 and 15 of the line, 12 and 13 after `)`.
            let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
            if let (Some(user), Some(system)) = (ticks(11), ticks(12)) {
                self.cpu.set((user + system) / USER_HZ);
            }
        }
        if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
            let kib = status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok());
            if let Some(kib) = kib {
                self.rss.set(kib * 1024);
            }
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            self.fds.set(i64::try_from(dir.count()).unwrap_or(i64::MAX));
        }
        if let Ok(limits) = std::fs::read_to_string("/proc/self/limits") {
            let soft = limits
                .lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|v| v.parse::<i64>().ok());
            if let Some(n) = soft {
                self.max_fds.set(n);
            }
        }
    }
}

impl Collector for ProcessCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.update();
        [
            self.cpu.collect(),
            self.rss.collect(),
            self.fds.collect(),
            self.max_fds.collect(),
            self.start.collect(),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_names_families_with_their_type_once_they_have_a_series() {
        let m = metrics();
        m.upstream("a").attempt("status_429");
        m.plugin_duration.with_label_values(&["p"]).observe(0.001);
        let text = m.render();
        assert!(text.contains("# TYPE switchyard_upstream_attempts_total counter"));
        assert!(text.contains("# TYPE switchyard_plugin_duration_seconds histogram"));
        assert!(text.contains(
            "switchyard_upstream_attempts_total{outcome=\"status_429\",upstream=\"a\"} 1"
        ));
        assert!(text.contains("switchyard_build_info{version=\""));
        assert!(text.contains("process_resident_memory_bytes "));
    }

    #[test]
    fn process_metrics_read_proc_self() {
        let p = ProcessCollector::new();
        p.update();
        assert!(p.rss.get() > 0);
        assert!(p.fds.get() > 0);
        assert!(p.max_fds.get() >= p.fds.get());
    }
}
