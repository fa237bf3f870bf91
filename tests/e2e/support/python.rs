//! The Python the tests run (the OpenAI SDK, hadolint, kubernetes-validate, the
//! Prometheus text parser): `SWITCHYARD_TEST_PYTHON`, else `<repo>/.venv/bin/python`.
//! `bash .ci/run` makes the venv; a missing one fails the test, never skips it.

use super::repo_root;
use std::path::PathBuf;

/// How to get the Python the tests need.
const HOW: &str = "run `bash .ci/run` from the repository root, or: \
                   python3 -m venv .venv && .venv/bin/pip install -r tests/python/requirements.txt";

/// The test Python interpreter.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("SWITCHYARD_TEST_PYTHON").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        assert!(
            p.exists(),
            "SWITCHYARD_TEST_PYTHON={} does not exist; {HOW}",
            p.display()
        );
        return p;
    }
    let venv = repo_root().canonicalize().unwrap().join(".venv/bin/python");
    assert!(
        venv.exists(),
        "no Python for the tests: {} does not exist and SWITCHYARD_TEST_PYTHON is not set; {HOW}",
        venv.display()
    );
    venv
}
