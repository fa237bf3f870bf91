//! The report end to end, from recorded lines to Markdown, plus the arithmetic.

use super::cells::{cpu_us_per_request, median, Cells};
use super::raw::{Mode, Raw, Scenario};
use super::render;

const META: &str = r#"{"kind":"meta","commit":"abc1234-dirty","date":"2026-11-22","cores":2,"clk_tck":100,"duration_s":5,"warmup_s":1,"rounds":3,"mock_threads":1,"loadgen_threads":1,"plugin_ms":50}"#;

/// One run record; `ticks` and the TTFB figures only where given.
fn run(
    (scenario, label, mode, conc, round): (&str, &str, &str, u32, u32),
    rps: f64,
    p50: f64,
    ticks: Option<[u64; 2]>,
) -> String {
    let ticks = ticks.map_or("null".to_owned(), |[a, b]| format!("[{a},{b}]"));
    let ttfb = if mode == "stream" {
        format!("{}", p50 - 0.001)
    } else {
        "null".to_owned()
    };
    format!(
        r#"{{"kind":"run","scenario":"{scenario}","label":"{label}","mode":"{mode}","conc":{conc},"round":{round},"ticks":{ticks},"result":{{"concurrency":{conc},"rps":{rps},"p50_ms":{p50},"p99_ms":{p99},"ttfb_p50_ms":{ttfb},"ttfb_p99_ms":{ttfb},"errors":0,"non_2xx":0,"ok":1,"requests":1,"total_requests":10000}}}}"#,
        p99 = p50 * 2.0
    )
}

/// Three targets × two modes × c=1 and c=64, three rounds; switchyard's p50 moves
/// between rounds so that the median shows.
fn default_lines() -> String {
    let mut lines = vec![META.to_owned()];
    for round in 1..=3 {
        for mode in ["non-stream", "stream"] {
            for conc in [1, 64] {
                lines.push(run(
                    ("default", "direct", mode, conc, round),
                    10000.0,
                    0.100,
                    None,
                ));
                let p50 = [0.130, 0.200, 0.125][round as usize - 1];
                lines.push(run(
                    ("default", "switchyard", mode, conc, round),
                    9000.0,
                    p50,
                    Some([100, 300]),
                ));
                lines.push(run(
                    ("default", "nginx", mode, conc, round),
                    10000.0,
                    0.120,
                    Some([100, 250]),
                ));
            }
        }
    }
    lines.push(r#"{"kind":"rss","label":"switchyard","idle_kb":8192,"peak_kb":30720}"#.to_owned());
    lines.join("\n")
}

#[test]
fn median_takes_the_middle_or_the_mean_of_the_middle_two() {
    assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
    assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
    assert_eq!(median(vec![]), None);
}

#[test]
fn cpu_per_request_is_ticks_over_requests() {
    // 200 ticks at 100/s = 2 s over 10 000 requests = 200 µs each.
    assert_eq!(cpu_us_per_request([100, 300], 100, 10_000), Some(200.0));
    assert_eq!(cpu_us_per_request([100, 300], 100, 0), None);
}

#[test]
fn cells_are_medians_over_rounds() {
    let raw = Raw::parse(&default_lines()).unwrap();
    let cells = Cells::of(&raw.runs, Scenario::Default, 100);
    let s = cells.get("switchyard", Mode::NonStream, 1).unwrap();
    assert_eq!(s.rounds, 3);
    assert_eq!(s.p50_ms, Some(0.130));
    assert_eq!(s.cpu_us, Some(200.0));
    assert_eq!(cells.concs("direct"), vec![1, 64]);
}

#[test]
fn default_report_names_the_commit_and_has_the_table_and_comparisons() {
    let md = render(&default_lines(), Scenario::Default).unwrap();
    assert!(
        md.contains(
            "Commit `abc1234-dirty`, 2026-11-22; each cell the median of 3 interleaved rounds."
        ),
        "{md}"
    );
    assert!(md.contains(
        "| target | mode | conc | rps | p50 ms | p99 ms | TTFB p50 | TTFB p99 | CPU µs/req |"
    ));
    assert!(
        md.contains("| switchyard | non-stream | 1 | 9000 | 0.130 | 0.260 | - | - | 200.0 |"),
        "{md}"
    );
    assert!(
        md.contains("| direct | stream | 64 | 10000 | 0.100 | 0.200 | 0.099 | 0.099 | - |"),
        "{md}"
    );
    assert!(md.contains("- Added latency at c=1, non-stream: p50 +0.030 ms (target ≤ 0.1: ok), p99 +0.060 ms (target ≤ 0.5: ok)"), "{md}");
    assert!(md.contains("- non-stream at c=64: rps switchyard/nginx 0.90× (target ≥ 0.8: ok); CPU/request switchyard/nginx 1.33× (target ≤ 1.5: ok)"), "{md}");
    assert!(
        md.contains("- Switchyard RSS: idle 8.0 MB (target ≤ 20: ok), peak 30.0 MB"),
        "{md}"
    );
}

#[test]
fn missing_targets_are_said_not_measured() {
    let lines = [
        META.to_owned(),
        run(
            ("default", "direct", "non-stream", 1, 1),
            10000.0,
            0.1,
            None,
        ),
        r#"{"kind":"missing","scenario":"default","label":"switchyard","why":"it did not start"}"#
            .to_owned(),
    ]
    .join("\n");
    let md = render(&lines, Scenario::Default).unwrap();
    assert!(
        md.contains("- switchyard: not measured (it did not start)"),
        "{md}"
    );
    assert!(!md.contains("Added latency"));
}

#[test]
fn plugin_report_has_per_chunk_and_http_plugin_lines() {
    let mut lines = vec![META.to_owned()];
    for mode in ["non-stream", "stream"] {
        for conc in [1, 64] {
            let extra = if mode == "stream" { 0.020 } else { 0.010 };
            lines.push(run(
                ("plugins", "none", mode, conc, 1),
                1000.0,
                0.100,
                Some([0, 200]),
            ));
            lines.push(run(
                ("plugins", "filter", mode, conc, 1),
                500.0,
                0.100 + extra,
                Some([0, 300]),
            ));
        }
    }
    lines.push(run(
        ("plugins", "pluginsvc", "non-stream", 1, 1),
        19.0,
        51.0,
        None,
    ));
    lines.push(run(
        ("plugins", "httppar", "non-stream", 1, 1),
        19.0,
        52.0,
        None,
    ));
    lines.push(run(
        ("plugins", "httpseq", "non-stream", 1, 1),
        10.0,
        104.0,
        None,
    ));
    let md = render(&lines.join("\n"), Scenario::Plugins).unwrap();
    assert!(
        md.contains(
            "| 2× http, sequential | non-stream | 1 | 10 | 104.000 | 208.000 | - | - | - |"
        ),
        "{md}"
    );
    assert!(md.contains("- rate_limiter + content_filter, non-stream: c=1 p50 +0.010 ms, p99 +0.020 ms; c=64 rps 0.50× of no plugins, CPU +100.0 µs/req (200.0 → 300.0)"), "{md}");
    // Latency: (0.020 ms stream − 0.010 ms non-stream) × 1000 / 20 = 0.5 µs net.
    assert!(md.contains("from latency: (stream p50 with − without) / 20 at c=1: 1.00 µs/chunk (0.50 net of the non-stream difference)"), "{md}");
    assert!(md.contains("parallel +0.900 ms (p50 − no-plugin − 1 × service), sequential +1.900 ms (− 2 × service); parallel/sequential p50 0.50×"), "{md}");
}

#[test]
fn a_bad_line_names_its_number() {
    let err = Raw::parse(&format!("{META}\n{{\"kind\":\"run\"}}")).unwrap_err();
    assert!(err.starts_with("line 2:"), "{err}");
}

/// The `ab` scenario: A and B at c=1 and c=64, both modes, three rounds. B costs
/// 50 more ticks over the 10 000 requests (+50 µs/req) in rounds 1 and 2 and 50
/// fewer in round 3, and its p99 is 0.010 ms higher in every round.
fn ab_lines() -> String {
    let mut lines = vec![
        META.to_owned(),
        r#"{"kind":"variant","label":"a","name":"off","bin":"/x/a/switchyard","version":"switchyard 0.1.0","tree":"066b4f8","rust_log":"info","metrics_flag":true,"yaml":"metrics: {enabled: false}\nlog: {access: false}"}"#.to_owned(),
        r#"{"kind":"rss","label":"ab-a","idle_kb":8192,"peak_kb":20480}"#.to_owned(),
        r#"{"kind":"variant","label":"b","name":"on","bin":"/x/b/switchyard","version":null,"tree":null,"rust_log":"warn","metrics_flag":false,"yaml":""}"#.to_owned(),
    ];
    for round in 1..=3 {
        for mode in ["non-stream", "stream"] {
            for conc in [1, 64] {
                lines.push(run(
                    ("ab", "a", mode, conc, round),
                    10000.0,
                    0.100 + 0.01 * f64::from(round),
                    Some([100, 300]),
                ));
                let extra = if round == 3 { 250 } else { 350 };
                lines.push(run(
                    ("ab", "b", mode, conc, round),
                    9000.0,
                    0.105 + 0.01 * f64::from(round),
                    Some([100, extra]),
                ));
            }
        }
    }
    lines.join("\n")
}

#[test]
fn ab_pairs_rounds_and_takes_the_median_of_the_differences() {
    use super::ab::Pair;
    let raw = Raw::parse(&ab_lines()).unwrap();
    assert_eq!(raw.variants.len(), 2);
    let p = Pair::of(&raw.runs, Mode::NonStream, 64, 100);
    assert_eq!(p.rounds, 3);
    // CPU: A 200 µs/req every round; B 250, 250, 150.
    assert_eq!(p.cpu_us.rounds, vec![50.0, 50.0, -50.0]);
    assert_eq!(p.cpu_us.median(), Some(50.0));
    assert_eq!(p.cpu_us.range(), Some((-50.0, 50.0)));
    assert_eq!(p.cpu_us.b_higher(), 2);
    assert_eq!(p.cpu_us.spread(2), "-50.00 … +50.00, B higher 2/3");
    // p99 is 2 × p50 in the fixture: 0.010 ms higher for B in every round.
    let p99 = p.p99_ms.median().unwrap();
    assert!((p99 - 0.010).abs() < 1e-9, "{p99}");
    assert_eq!(p.rps_ratio.median(), Some(0.9));
    assert!(p.ttfb_p99_ms.rounds.is_empty());
    let s = Pair::of(&raw.runs, Mode::Stream, 1, 100);
    assert_eq!(s.ttfb_p99_ms.rounds.len(), 3);
}

#[test]
fn ab_pairs_only_rounds_where_both_ran() {
    use super::ab::Pair;
    let lines = [
        META.to_owned(),
        run(("ab", "a", "non-stream", 1, 1), 100.0, 0.1, Some([0, 10])),
        run(("ab", "b", "non-stream", 1, 1), 100.0, 0.2, Some([0, 20])),
        run(("ab", "a", "non-stream", 1, 2), 100.0, 0.1, Some([0, 10])),
        // a default-scenario run with the same label is not part of it
        run(("default", "b", "non-stream", 1, 2), 100.0, 9.0, None),
    ]
    .join("\n");
    let raw = Raw::parse(&lines).unwrap();
    let p = Pair::of(&raw.runs, Mode::NonStream, 1, 100);
    assert_eq!(p.rounds, 1);
    assert_eq!(p.cpu_us.rounds, vec![10.0]);
}

#[test]
fn ab_report_names_the_variants_and_has_both_tables() {
    let md = render(&ab_lines(), Scenario::Ab).unwrap();
    assert!(
        md.contains(
            "Commit `abc1234-dirty`, 2026-11-22; each cell the median of 3 interleaved rounds."
        ),
        "{md}"
    );
    assert!(md.contains("- A = **off**: `/x/a/switchyard` (switchyard 0.1.0, checkout at `066b4f8`); `RUST_LOG=info`; own metrics port (`--metrics-listen`); YAML appended: `metrics: {enabled: false}` / `log: {access: false}`; RSS idle 8.0 MB, peak 20.0 MB"), "{md}");
    assert!(md.contains("- B = **on**: `/x/b/switchyard`; `RUST_LOG=warn`; no `metrics:` section (the binary does not know it); YAML appended: none; RSS idle - MB, peak - MB"), "{md}");
    // Medians per variant: A p50 0.120, B p50 0.125 (rounds 1..3 add 0.01 each).
    assert!(
        md.contains("| off | non-stream | 64 | 10000 | 0.120 | 0.240 | - | - | 200.0 |"),
        "{md}"
    );
    assert!(
        md.contains("| on | non-stream | 64 | 9000 | 0.125 | 0.250 | - | - | 250.0 |"),
        "{md}"
    );
    assert!(md.contains("B − A (on − off), paired by round"), "{md}");
    assert!(
        md.contains("| non-stream | 64 | 3 | 0.900 | +0.005 | +0.010 | - | - | +50.00 | -50.00 … +50.00, B higher 2/3 | +0.010 … +0.010, B higher 3/3 |"),
        "{md}"
    );
    assert!(
        md.contains("| stream | 1 | 3 | 0.900 | +0.005 | +0.010 | +0.005 | +0.005 |"),
        "{md}"
    );
    assert!(md.contains("- CPU per request at c=64, B − A: non-stream +50.00 µs/req (+25.0 % of A's 200.0); stream +50.00 µs/req (+25.0 % of A's 200.0)"), "{md}");
    assert!(md.contains("- Latency at c=1, B − A: non-stream p99 +0.010 ms, p50 +0.005 ms; stream p99 +0.010 ms, p50 +0.005 ms"), "{md}");
}

#[test]
fn ab_report_says_which_variant_did_not_start() {
    let lines = [
        META.to_owned(),
        r#"{"kind":"variant","label":"b","name":"new","bin":"/x/switchyard","rust_log":"warn","metrics_flag":true}"#.to_owned(),
        r#"{"kind":"missing","scenario":"ab","label":"b","why":"the gateway did not start"}"#.to_owned(),
        run(("ab", "a", "non-stream", 1, 1), 100.0, 0.1, Some([0, 10])),
    ]
    .join("\n");
    let md = render(&lines, Scenario::Ab).unwrap();
    assert!(
        md.contains("- new: not measured (the gateway did not start)"),
        "{md}"
    );
    assert!(md.contains("- A: no record of what ran"), "{md}");
    assert!(md.contains("| A | non-stream | 1 | 100 |"), "{md}");
    assert!(!md.contains("B − A"), "{md}");
}
