//! The plugin chain: built once per config from `plugins:`, then run at each stage.
//!
//! Order: a stage's plugins run in groups by `priority`, lowest first. Within a group
//! the sequential plugins (`parallel: false`) run one by one in config order, then the
//! parallel ones run concurrently. Parallel plugins see the body as the sequential ones
//! left it; they may reject and add response headers, but body changes and upstream
//! headers are only taken from sequential plugins (a plugin that always modifies cannot
//! be configured parallel; an `http` plugin that returns a change while parallel has
//! that change dropped and counted as an error). The first rejection stops the chain;
//! other members of its parallel group are cancelled.
//!
//! Isolation: every call is bounded by the plugin's `timeout` and panics are caught;
//! a failure is logged and counted, then `on_error` decides — `fail_open` goes on,
//! `fail_closed` answers 500.

use super::isolate::{self, Failure};
use super::selector::Selector;
use super::{
    BuildCtx, ErrorExchange, Exchange, Plugin, PluginFuture, RequestMeta, ResponseExchange, Usage,
    Verdict, REGISTRY,
};
use crate::client::Clients;
use crate::error::GatewayError;
use crate::state::Shared;
use futures_util::stream::{FuturesUnordered, StreamExt as _};
use http::{HeaderName, HeaderValue, StatusCode};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use switchyard_config::{ConfigError, OnError, PluginSpec, Stage};

/// One configured plugin.
pub struct Instance {
    /// Unique id.
    pub id: Arc<str>,
    /// Registered name.
    pub name: String,
    /// Whether it runs.
    pub enabled: bool,
    /// Runs concurrently within its priority group.
    pub parallel: bool,
    /// Priority (lower first).
    pub priority: i32,
    /// Stages it runs at.
    pub stages: Vec<Stage>,
    /// Failure policy.
    pub on_error: OnError,
    /// Bound on one call.
    pub timeout: Duration,
    /// Failures and rejections so far.
    pub counters: Arc<Counters>,
    selector: Selector,
    /// The entry's `config`, as built from (a reload keeps the built plugin, and its
    /// state, while the name, id and settings are unchanged).
    settings: Value,
    plugin: Arc<dyn Plugin>,
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("id", &self.id)
            .field("stages", &self.stages)
            .field("priority", &self.priority)
            .field("parallel", &self.parallel)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
struct Group {
    sequential: Vec<usize>,
    parallel: Vec<usize>,
}

/// Headers the plugins of one stage asked for. Its `Debug` shows names only (a plugin
/// may hand the upstream a credential).
#[derive(Default)]
pub struct StageEffects {
    /// For the upstream request.
    pub upstream_headers: Vec<(HeaderName, HeaderValue)>,
    /// For the client's response.
    pub response_headers: Vec<(HeaderName, HeaderValue)>,
}

impl std::fmt::Debug for StageEffects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names = |h: &[(HeaderName, HeaderValue)]| -> Vec<String> {
            h.iter().map(|(n, _)| n.as_str().to_owned()).collect()
        };
        f.debug_struct("StageEffects")
            .field("upstream_headers", &names(&self.upstream_headers))
            .field("response_headers", &names(&self.response_headers))
            .finish()
    }
}

/// What a stage's plugins are called with, besides the body.
#[derive(Debug, Clone, Copy)]
pub enum StageInput<'a> {
    /// `pre_request`.
    Request,
    /// `post_response`.
    Response {
        /// Upstream status.
        status: StatusCode,
        /// Usage, if known.
        usage: Option<Usage>,
        /// A stream ended (the body cannot change any more).
        streamed: bool,
        /// Assembled stream text, when asked for.
        content: Option<&'a str>,
        /// The request JSON, if it was parsed.
        request: Option<&'a Value>,
    },
    /// `error`.
    Error {
        /// The error status.
        status: StatusCode,
    },
}

/// The chain of one config generation.
#[derive(Debug, Default)]
pub struct Chain {
    instances: Vec<Instance>,
    groups: [Vec<Group>; 4],
}

fn stage_index(stage: Stage) -> usize {
    match stage {
        Stage::PreRequest => 0,
        Stage::OnChunk => 1,
        Stage::PostResponse => 2,
        Stage::Error => 3,
    }
}

impl Chain {
    /// Builds every configured plugin; reports every problem with its YAML path.
    pub fn build(
        specs: &[PluginSpec],
        clients: &Clients,
        state: Option<&Arc<Shared>>,
    ) -> Result<Self, Vec<ConfigError>> {
        Self::build_with(specs, clients, state, REGISTRY)
    }

    /// Builds against a given registry (tests register their own plugins).
    pub fn build_with(
        specs: &[PluginSpec],
        clients: &Clients,
        state: Option<&Arc<Shared>>,
        registry: &[super::Registration],
    ) -> Result<Self, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let mut instances = Vec::new();
        for spec in specs {
            let Some(reg) = registry.iter().find(|r| r.name == spec.name) else {
                let known: Vec<&str> = registry.iter().map(|r| r.name).collect();
                errors.push(super::config_error(
                    format!("{}.name", spec.path),
                    format!(
                        "unknown plugin `{}` (known: {})",
                        spec.name,
                        known.join(", ")
                    ),
                ));
                continue;
            };
            let stages = if spec.stages.is_empty() {
                reg.default_stages.to_vec()
            } else {
                spec.stages.clone()
            };
            for s in &stages {
                if !reg.stages.contains(s) {
                    let supported: Vec<&str> = reg.stages.iter().map(|s| s.name()).collect();
                    errors.push(super::config_error(
                        format!("{}.stage", spec.path),
                        format!(
                            "`{}` cannot run at `{}` (it supports: {})",
                            spec.name,
                            s.name(),
                            supported.join(", ")
                        ),
                    ));
                }
            }
            let plugin = match (reg.build)(&BuildCtx {
                spec,
                clients,
                state,
            }) {
                Ok(p) => p,
                Err(mut e) => {
                    errors.append(&mut e);
                    continue;
                }
            };
            if spec.parallel && plugin.modifies() {
                errors.push(super::config_error(
                    format!("{}.parallel", spec.path),
                    format!(
                        "`{}` changes requests, so it must run sequentially (parallel: false)",
                        spec.name
                    ),
                ));
            }
            instances.push(Instance {
                id: spec.id.clone(),
                name: spec.name.clone(),
                enabled: spec.enabled,
                parallel: spec.parallel,
                priority: spec.priority,
                stages,
                on_error: spec.on_error,
                timeout: spec.timeout,
                counters: Arc::new(Counters::new(&spec.id)),
                selector: Selector::new(spec.models.clone(), spec.keys.clone()),
                settings: spec.config.clone(),
                plugin,
            });
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Self::assemble(instances))
    }

    /// Takes over the built plugins of `old` whose name, id and settings are unchanged,
    /// with their state (rate-limiter and token-limiter counts). Stages, priority,
    /// selectors and isolation settings stay as newly configured. Returns how many.
    pub fn adopt(&mut self, old: &Chain) -> usize {
        let mut kept = 0;
        for new in &mut self.instances {
            let same = old
                .instances
                .iter()
                .find(|o| o.id == new.id && o.name == new.name && o.settings == new.settings);
            if let Some(o) = same {
                new.plugin = o.plugin.clone();
                kept += 1;
            }
        }
        kept
    }

    /// Groups built instances by stage and priority.
    fn assemble(instances: Vec<Instance>) -> Self {
        let mut groups: [Vec<Group>; 4] = Default::default();
        for (stage, _) in Stage::ALL {
            let mut members: Vec<usize> = (0..instances.len())
                .filter(|&i| instances[i].enabled && instances[i].stages.contains(&stage))
                .collect();
            members.sort_by_key(|&i| instances[i].priority); // stable: config order within a priority
            let slot = &mut groups[stage_index(stage)];
            let mut last = None;
            for i in members {
                if last != Some(instances[i].priority) {
                    slot.push(Group::default());
                    last = Some(instances[i].priority);
                }
                if let Some(g) = slot.last_mut() {
                    if instances[i].parallel {
                        g.parallel.push(i);
                    } else {
                        g.sequential.push(i);
                    }
                }
            }
        }
        Self { instances, groups }
    }

    /// Every configured instance, in config order.
    pub fn instances(&self) -> &[Instance] {
        &self.instances
    }

    /// Whether no plugin runs at any stage.
    pub fn is_empty(&self) -> bool {
        self.groups.iter().all(Vec::is_empty)
    }

    /// Whether any plugin runs at `stage` (for some request).
    pub fn has_stage(&self, stage: Stage) -> bool {
        !self.groups[stage_index(stage)].is_empty()
    }

    fn active<'a>(
        &'a self,
        stage: Stage,
        meta: Option<&'a RequestMeta>,
    ) -> impl Iterator<Item = &'a Instance> + 'a {
        self.groups[stage_index(stage)]
            .iter()
            .flat_map(|g| g.sequential.iter().chain(g.parallel.iter()))
            .map(|&i| &self.instances[i])
            .filter(move |inst| inst.selector.matches(meta))
    }

    /// Whether any plugin runs at `stage` for this request.
    pub fn applies(&self, stage: Stage, meta: &RequestMeta) -> bool {
        self.active(stage, Some(meta)).next().is_some()
    }

    /// Whether a `post_response` plugin wants usage for this request.
    pub fn needs_usage(&self, meta: &RequestMeta) -> bool {
        self.active(Stage::PostResponse, Some(meta))
            .any(|i| i.plugin.needs_usage())
    }

    /// Whether a `post_response` plugin wants the response body (or stream text).
    pub fn needs_response_body(&self, meta: &RequestMeta) -> bool {
        self.active(Stage::PostResponse, Some(meta))
            .any(|i| i.plugin.needs_response_body())
    }

    /// The `on_chunk` filters for one stream, in run order (each start counts as a call).
    pub fn chunk_filters(&self, meta: &RequestMeta) -> Vec<ActiveFilter> {
        self.active(Stage::OnChunk, Some(meta))
            .filter_map(|inst| {
                let filter = match isolate::call(|| inst.plugin.chunk_filter(meta)) {
                    Ok(None) => return None,
                    Ok(Some(f)) => {
                        // `on_chunk` calls are counted per stream, not per event.
                        inst.counters.calls[stage_index(Stage::OnChunk)].inc();
                        f
                    }
                    Err(e) => {
                        inst.counters.failed();
                        tracing::warn!(plugin = %inst.id, error = %e, "plugin failed to start a stream filter");
                        if inst.on_error == OnError::FailOpen {
                            return None;
                        }
                        // fail_closed: the stream must not go out unfiltered.
                        Box::new(Broken(inst.id.clone()))
                    }
                };
                Some(ActiveFilter {
                    filter,
                    id: inst.id.clone(),
                    on_error: inst.on_error,
                    counters: inst.counters.clone(),
                })
            })
            .collect()
    }

    /// Runs one stage. Sequential plugins may change `body`; the headers plugins asked
    /// for are returned. A rejection or a `fail_closed` failure is an `Err`.
    pub async fn run(
        &self,
        stage: Stage,
        meta: Option<&RequestMeta>,
        input: StageInput<'_>,
        body: &mut BodyCell,
    ) -> Result<StageEffects, GatewayError> {
        let mut effects = StageEffects::default();
        for group in &self.groups[stage_index(stage)] {
            let pick = |ids: &[usize]| -> Vec<&Instance> {
                ids.iter()
                    .map(|&i| &self.instances[i])
                    .filter(|inst| inst.selector.matches(meta))
                    .collect()
            };
            let sequential = pick(&group.sequential);
            let parallel = pick(&group.parallel);
            if sequential.is_empty() && parallel.is_empty() {
                continue;
            }
            let wants_body = sequential
                .iter()
                .chain(parallel.iter())
                .any(|i| match stage {
                    Stage::PreRequest => i.plugin.needs_request_body(),
                    _ => true,
                });
            if wants_body {
                body.parse();
            }
            for inst in sequential {
                let result = call(inst, stage, meta, input, body.json()).await;
                if let Some(verdict) = settle(inst, stage, result)? {
                    if let Some(patch) = verdict.patch {
                        // A change is plugin code too: a panic in it is the plugin's failure.
                        if let Err(e) = isolate::call(|| body.apply(patch)) {
                            failed(inst, stage, &e)?;
                        }
                    }
                    effects.upstream_headers.extend(verdict.upstream_headers);
                    effects.response_headers.extend(verdict.response_headers);
                }
            }
            if parallel.is_empty() {
                continue;
            }
            let json = body.json();
            let calls = parallel
                .iter()
                .map(|inst| call(inst, stage, meta, input, json));
            // The first rejection (or fail_closed failure) ends the group; at the error
            // stage nothing can stop the error already on its way, so all members finish.
            let stops = |i: usize, r: &Result<Verdict, Failure>| {
                stage != Stage::Error
                    && match r {
                        Ok(Verdict::Reject(_)) => true,
                        Ok(Verdict::Continue(_)) => false,
                        Err(_) => parallel[i].on_error == OnError::FailClosed,
                    }
            };
            let results = match join_until(calls, stops).await {
                Ok(all) => all,
                Err((i, stopped)) => {
                    // Settling a stop always yields the rejection or the failure.
                    settle(parallel[i], stage, stopped)?;
                    continue;
                }
            };
            for (inst, result) in parallel.iter().zip(results) {
                if let Some(verdict) = settle(inst, stage, result)? {
                    if verdict.patch.is_some() || !verdict.upstream_headers.is_empty() {
                        inst.counters.failed();
                        tracing::warn!(plugin = %inst.id, stage = stage.name(), "a parallel plugin returned a change; changes are only taken from sequential plugins, so it was dropped");
                    }
                    effects.response_headers.extend(verdict.response_headers);
                }
            }
        }
        Ok(effects)
    }
}

/// One isolated, timed call of an instance's hook.
async fn call<'a>(
    inst: &'a Instance,
    stage: Stage,
    meta: Option<&'a RequestMeta>,
    input: StageInput<'a>,
    body: Option<&'a Value>,
) -> Result<Verdict, Failure> {
    let started = tokio::time::Instant::now();
    let result = isolate::run(inst.timeout, || {
        invoke(&*inst.plugin, stage, meta, input, body)
    })
    .await;
    inst.counters.called(stage, started.elapsed());
    result
}

/// Calls the plugin's hook for `stage`.
fn invoke<'a>(
    plugin: &'a dyn Plugin,
    stage: Stage,
    meta: Option<&'a RequestMeta>,
    input: StageInput<'a>,
    body: Option<&'a Value>,
) -> PluginFuture<'a, Verdict> {
    match (stage, input, meta) {
        (Stage::PreRequest, StageInput::Request, Some(meta)) => {
            plugin.pre_request(Exchange { meta, body })
        }
        (
            Stage::PostResponse,
            StageInput::Response {
                status,
                usage,
                streamed,
                content,
                request,
            },
            Some(meta),
        ) => plugin.post_response(ResponseExchange {
            meta,
            request,
            status,
            body,
            usage,
            streamed,
            content,
        }),
        (Stage::Error, StageInput::Error { status }, meta) => match body {
            Some(body) => plugin.on_error(ErrorExchange { meta, status, body }),
            None => Box::pin(std::future::ready(Ok(Verdict::pass()))),
        },
        _ => Box::pin(std::future::ready(Ok(Verdict::pass()))),
    }
}

/// Turns a plugin's result into effects to apply, a rejection, or — per `on_error` —
/// nothing (fail open) or a 500 (fail closed).
fn settle(
    inst: &Instance,
    stage: Stage,
    result: Result<Verdict, Failure>,
) -> Result<Option<super::Effects>, GatewayError> {
    match result {
        Ok(Verdict::Continue(effects)) => Ok(Some(effects)),
        Ok(Verdict::Reject(r)) if stage == Stage::Error => {
            tracing::debug!(plugin = %inst.id, code = %r.code, "error-stage rejection ignored");
            Ok(None)
        }
        Ok(Verdict::Reject(r)) => {
            inst.counters.rejected();
            tracing::info!(plugin = %inst.id, stage = stage.name(), status = r.status.as_u16(), code = %r.code, "plugin rejected the request");
            Err(GatewayError::PluginRejected(Box::new(r)))
        }
        Err(e) => failed(inst, stage, &e).map(|()| None),
    }
}

/// Counts and logs a plugin failure; `fail_closed` turns it into a 500, except at the
/// `error` stage, where the request has failed already and its error stands.
fn failed(inst: &Instance, stage: Stage, error: &Failure) -> Result<(), GatewayError> {
    inst.counters.failed();
    tracing::warn!(plugin = %inst.id, stage = stage.name(), error = %error, policy = ?inst.on_error, "plugin failed");
    match (inst.on_error, stage) {
        (OnError::FailClosed, Stage::PreRequest | Stage::OnChunk | Stage::PostResponse) => {
            Err(GatewayError::PluginFailed(inst.id.clone()))
        }
        (OnError::FailOpen, _) | (OnError::FailClosed, Stage::Error) => Ok(()),
    }
}

/// Polls a parallel group's calls on this task (so they may borrow) until all are done
/// or `stop` accepts a result; the rest are then dropped, which cancels them. Returns
/// the results in input order, or the stopping result with its index.
async fn join_until<F: std::future::Future>(
    calls: impl IntoIterator<Item = F>,
    stop: impl Fn(usize, &F::Output) -> bool,
) -> Result<Vec<F::Output>, (usize, F::Output)> {
    let mut running: FuturesUnordered<_> = calls
        .into_iter()
        .enumerate()
        .map(|(i, call)| async move { (i, call.await) })
        .collect();
    let mut results: Vec<Option<F::Output>> = (0..running.len()).map(|_| None).collect();
    while let Some((i, out)) = running.next().await {
        if stop(i, &out) {
            return Err((i, out));
        }
        results[i] = Some(out);
    }
    Ok(results.into_iter().flatten().collect())
}

mod body;
mod counters;
mod hooks;
mod stream;
pub use body::BodyCell;
pub use counters::Counters;
pub use hooks::{ChainHooks, StreamSummary};
pub use stream::ActiveFilter;
use stream::Broken;

#[cfg(test)]
mod tests;
