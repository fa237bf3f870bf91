//! Unit tests of [`Account`]: model globs (groups merged by the config crate), the
//! budget window and its refusal, usage reports. Key names are unique per test: usage
//! is process-wide by name.

use super::*;
use std::sync::Arc;
use switchyard_config::{Budget, ClientKey, KeyValue, Secret};

fn account(yaml: &str, name: &str) -> Account {
    let config = switchyard_config::parse(yaml, &|_| None).unwrap();
    let key = config.keys.into_iter().find(|k| &*k.name == name).unwrap();
    Account::new(key, None)
}

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

fn budget_key(name: &str, budget: Budget) -> Account {
    Account::new(
        ClientKey {
            name: Arc::from(name),
            key: KeyValue::Plain(Secret::new("sk-unused-1")),
            user: None,
            groups: Arc::from(Vec::new()),
            models: None,
            budget: Some(budget),
        },
        None,
    )
}

const ACCESS: &str = "upstreams: [{name: u, base_url: 'http://u', models: [m]}]\ngroups:\n  - {name: eng, models: ['claude-*']}\n  - {name: ops}\nkeys:\n  - {name: acc-a, key: sk-aaaaaaaa, models: ['gpt-4o*', fast], groups: [eng, ops]}\n  - {name: acc-b, key: sk-bbbbbbbb, groups: [ops]}\n  - {name: acc-c, key: sk-cccccccc, models: [gpt-4o-mini]}\n";

#[test]
fn a_key_may_use_its_own_globs_and_its_groups_models() {
    let a = account(ACCESS, "acc-a");
    assert!(a.may_use("gpt-4o"));
    assert!(a.may_use("gpt-4o-mini"));
    assert!(a.may_use("fast"));
    assert!(a.may_use("claude-3-5-sonnet"), "from group eng");
    assert!(!a.may_use("o1"));
    assert!(!a.may_use("fastest"));
}

#[test]
fn a_key_whose_groups_list_no_models_may_use_any_model() {
    let b = account(ACCESS, "acc-b");
    assert!(b.may_use("anything-at-all"));
}

#[test]
fn an_upstream_prefixed_id_is_allowed_by_its_model_part() {
    let c = account(ACCESS, "acc-c");
    assert!(c.may_use("openai/gpt-4o-mini"));
    assert!(!c.may_use("openai/gpt-4o"));
    let e = c.check_model("gpt-4o").unwrap_err();
    assert_eq!(e.code(), "model_not_allowed");
    assert_eq!(e.status(), http::StatusCode::FORBIDDEN);
    assert!(!e.to_string().contains("gpt-4o-mini"), "{e}");
}

#[test]
fn windows_align_to_the_epoch_and_retry_after_runs_to_the_end() {
    assert_eq!(until_window_end(3600, 7200), 3600);
    assert_eq!(until_window_end(3600, 7201), 3599);
    assert_eq!(until_window_end(3600, 10799), 1);
    assert_eq!(until_window_end(86_400, 86_400 * 3 + 60), 86_340);
}

#[test]
fn a_token_budget_refuses_once_reached_and_resets_with_the_next_window() {
    let a = budget_key(
        "budget-tokens",
        Budget {
            tokens: Some(100),
            usd: None,
            window: Duration::from_secs(3600),
        },
    );
    let t0 = 3600 * 10 + 100;
    assert!(a.check_budget(at(t0)).is_ok());
    a.charge(None, 60, 30, at(t0));
    assert!(a.check_budget(at(t0 + 1)).is_ok(), "90 < 100");
    a.charge(None, 5, 5, at(t0 + 2));
    let e = a.check_budget(at(t0 + 3)).unwrap_err();
    assert_eq!(e.code(), "budget_exceeded");
    assert_eq!(e.status(), http::StatusCode::TOO_MANY_REQUESTS);
    let GatewayError::BudgetExceeded { retry_after } = e else {
        panic!("budget error expected")
    };
    assert_eq!(retry_after, Duration::from_secs(3600 - 103));
    assert!(a.check_budget(at(3600 * 11)).is_ok(), "a new window");
    let report = a.report(at(3600 * 11));
    assert_eq!(report.total_tokens, 100);
    assert_eq!(report.requests, 2);
    let w = report.window.unwrap();
    assert_eq!((w.start, w.end, w.tokens), (3600 * 11, 3600 * 12, 0));
}

#[test]
fn a_spend_budget_counts_dollars_from_the_price_per_million_tokens() {
    let a = budget_key(
        "budget-usd",
        Budget {
            tokens: None,
            usd: Some(0.01),
            window: Duration::from_secs(86_400),
        },
    );
    let now = at(86_400 * 5);
    // 1000 input at $2/M + 1000 output at $8/M = $0.01.
    a.charge(Some((2.0, 8.0)), 999, 1000, now);
    assert!(a.check_budget(now).is_ok());
    a.charge(Some((2.0, 8.0)), 1, 0, now);
    assert!(a.check_budget(now).is_err());
    let report = a.report(now);
    assert!((report.total_usd - 0.01).abs() < 1e-12, "{report:?}");
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["key"], "budget-usd");
    assert_eq!(json["window"]["usd_limit"], 0.01);
}
