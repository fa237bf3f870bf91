//! What reporting one finished request costs, without the noise of a load test: the
//! process CPU time (the log thread's included) of `RequestRecord::report` over many
//! calls, with metrics and the access log (text and JSON, to a discarded stderr) on,
//! against both off. The end-to-end figure is `run.sh ab`; this isolates the part the
//! switches turn on and off.
//!
//!   cargo run --release -p switchyard-benches --bin recordbench [-- CALLS]

use std::time::{Duration, SystemTime};
use switchyard::log_writer::{self, LogWriter};
use switchyard::record::{Reporting, RequestId, RequestRecord, Timestamp};
use switchyard_benches::cpu::process_cpu;
use switchyard_config::LogFormat;

fn record(i: u64) -> RequestRecord {
    RequestRecord {
        timestamp: Timestamp(SystemTime::UNIX_EPOCH + Duration::from_millis(1_796_098_545_140)),
        // As long as a real one.
        request_id: RequestId(
            http::HeaderValue::from_str(&format!("req_062361be9f0c4d2a{i:016x}"))
                .unwrap_or_else(|_| http::HeaderValue::from_static("req_")),
        ),
        method: http::Method::POST,
        path: "/v1/chat/completions".to_owned(),
        endpoint: "chat",
        model: Some("bench-model".to_owned()),
        served_model: Some("bench-model".into()),
        upstream: Some("bench".into()),
        attempts: 1,
        status: 200,
        latency_ms: 0.995,
        ttfb_ms: Some(0.995),
        input_tokens: Some(12),
        output_tokens: Some(31),
        bytes_out: 402,
        model_label: "bench-model",
        known_model: true,
        ..RequestRecord::default()
    }
}

/// CPU nanoseconds per call of `report` with `to`, over `calls` calls.
fn per_call(calls: u64, to: Reporting, writer: &LogWriter) -> Result<f64, String> {
    let records: Vec<RequestRecord> = (0..1024).map(record).collect();
    let before = process_cpu()?;
    for i in 0..calls {
        let r = &records[(i % 1024) as usize];
        r.report(
            Duration::from_micros(995),
            Some(Duration::from_micros(995)),
            to,
        );
    }
    writer.flush(Duration::from_secs(30));
    let spent = process_cpu()? - before;
    Ok(spent.as_nanos() as f64 / calls as f64)
}

#[expect(clippy::print_stdout, reason = "the table is this binary's output")]
fn main() -> Result<(), String> {
    let calls: u64 = match std::env::args().nth(1) {
        Some(n) => n.parse().map_err(|e| format!("CALLS: {e}"))?,
        None => 2_000_000,
    };
    let writer = LogWriter::spawn(std::io::sink()).map_err(|e| e.to_string())?;
    log_writer::install(writer.clone());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
        .with_writer(writer.clone())
        .init();
    let variants = [
        ("off (metrics and access log)", false, None),
        ("metrics only", true, None),
        ("metrics + access log, text", true, Some(LogFormat::Text)),
        ("metrics + access log, json", true, Some(LogFormat::Json)),
    ];
    println!("| variant | CPU ns per request (median of 5) |\n|---|---:|");
    for (name, metrics, access_log) in variants {
        let to = Reporting {
            metrics,
            access_log,
        };
        let mut runs = Vec::new();
        for _ in 0..5 {
            runs.push(per_call(calls, to, &writer)?);
        }
        runs.sort_by(f64::total_cmp);
        println!("| {name} | {:.0} |", runs[2]);
    }
    Ok(())
}
