//! Libre WebUI's plugin API on the admin listener (`/api/plugins…`), over the
//! directory `admin.plugins_dir` (relative to the config file; `gateway.yaml` lists it
//! under `include:`). Each plugin is `<dir>/<id>.json` in Libre WebUI's plugin shape;
//! Switchyard's own upstream shape (`{name, base_url, auth, models}`) is converted to it
//! on install/PUT. A write goes to `<id>.json.tmp`, is synced and renamed over the file
//! (the previous one kept as `<id>.json.bak`), then the config is reloaded through the
//! same path as `POST /admin/reload`; when that fails the previous file is put back and
//! the call answers 400 with the reload's errors, so nothing changes. "Active" is
//! Libre WebUI's one selected plugin, kept in `<dir>/.active`: a marker only, every
//! installed plugin is routed.

use super::{error, ok, respond};
use crate::reload::{Reloader, Trigger};
use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::{json, Map, Value};
use std::io::Write;
use std::path::{Path, PathBuf};

type Reply = http::Response<http_body_util::Full<Bytes>>;

/// One call under `/api/plugins`.
pub(super) async fn handle(
    reloader: &Reloader,
    method: &Method,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> Reply {
    let Some(dir) = plugins_dir(reloader) else {
        return bad(
            StatusCode::NOT_FOUND,
            "the plugin API is off: set admin.plugins_dir in the config",
        );
    };
    let rest = path.trim_start_matches("/api/plugins").trim_matches('/');
    let parts: Vec<&str> = if rest.is_empty() {
        Vec::new()
    } else {
        rest.split('/').collect()
    };
    let _one = LOCK.lock().await;
    match (method.clone(), parts.as_slice()) {
        (Method::GET, []) | (Method::GET, ["status", "all"]) => list(reloader, &dir),
        (Method::GET, ["active", "current"]) => {
            let active = read_active(&dir);
            let plugin = active.as_deref().and_then(|id| read_plugin(&dir, id));
            ok(&json!({"success": true, "data": plugin}))
        }
        (Method::POST, ["install"]) => write(reloader, &dir, None, body).await,
        (Method::POST, ["upload"]) => match multipart_file(content_type, body) {
            Ok(file) => write(reloader, &dir, None, file).await,
            Err(msg) => bad(StatusCode::BAD_REQUEST, &msg),
        },
        (Method::POST, ["deactivate"]) => {
            let _gone = std::fs::remove_file(dir.join(".active"));
            ok(&json!({"success": true, "data": null}))
        }
        (Method::POST, ["activate", id]) => activate(&dir, id),
        (Method::GET, [id]) => match checked(id).and_then(|id| read_plugin(&dir, id).ok_or(())) {
            Ok(plugin) => ok(&json!({"success": true, "data": plugin})),
            Err(()) => not_found(id),
        },
        (Method::GET, [id, "export"]) => {
            match checked(id).and_then(|id| read_plugin(&dir, id).ok_or(())) {
                Ok(plugin) => ok(&plugin),
                Err(()) => not_found(id),
            }
        }
        (Method::PUT, [id]) => {
            if checked(id).is_err() || !dir.join(format!("{id}.json")).exists() {
                return not_found(id);
            }
            write(reloader, &dir, Some(id), body).await
        }
        (Method::DELETE, [id]) => delete(reloader, &dir, id).await,
        _ => bad(
            StatusCode::NOT_FOUND,
            &format!("no plugin endpoint {method} {path}"),
        ),
    }
}

/// One plugin change at a time (file, reload, maybe restore).
static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn plugins_dir(reloader: &Reloader) -> Option<PathBuf> {
    let snap = reloader.live().load();
    let dir = snap.config.admin.plugins_dir.as_ref()?;
    let base = reloader
        .path()?
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    Some(base.join(dir))
}

/// A plugin id is a file name: `[a-z0-9_-]`, 1 to 64 characters.
fn checked(id: &str) -> Result<&str, ()> {
    let fine = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if fine {
        Ok(id)
    } else {
        Err(())
    }
}

fn read_plugin(dir: &Path, id: &str) -> Option<Value> {
    let text = std::fs::read_to_string(dir.join(format!("{id}.json"))).ok()?;
    serde_json::from_str(&text).ok()
}

fn read_active(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join(".active")).ok()?;
    let id = text.trim().to_owned();
    checked(&id).ok()?;
    Some(id)
}

fn list(reloader: &Reloader, dir: &Path) -> Reply {
    let snap = reloader.live().load();
    let active = read_active(dir);
    let mut ids: Vec<String> = std::fs::read_dir(dir)
        .map(|l| {
            l.filter_map(Result::ok)
                .filter_map(|e| {
                    e.file_name()
                        .to_str()?
                        .strip_suffix(".json")
                        .map(str::to_owned)
                })
                .filter(|id| checked(id).is_ok())
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    let rows: Vec<Value> = ids
        .iter()
        .filter_map(|id| {
            let p = read_plugin(dir, id)?;
            Some(json!({
                "id": id,
                "name": p.get("name").cloned().unwrap_or_else(|| json!(id)),
                "type": p.get("type").cloned().unwrap_or(Value::Null),
                "active": active.as_deref() == Some(id),
                "models": p.get("model_map").cloned().unwrap_or_else(|| json!([])),
                "available": snap.upstreams.list.iter().any(|u| &*u.name == id),
            }))
        })
        .collect();
    ok(&json!({"success": true, "data": rows}))
}

fn activate(dir: &Path, id: &str) -> Reply {
    if checked(id).is_err() || read_plugin(dir, id).is_none() {
        return not_found(id);
    }
    match atomic_write(dir, ".active", id.as_bytes()) {
        Ok(()) => ok(&json!({"success": true, "data": {"id": id, "active": true}})),
        Err(e) => bad(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("cannot write .active: {e}"),
        ),
    }
}

/// Install (`id: None`: the body's) or replace (`PUT /api/plugins/:id`).
async fn write(reloader: &Reloader, dir: &Path, id: Option<&str>, body: &[u8]) -> Reply {
    let plugin = match plugin_from(body) {
        Ok(p) => p,
        Err(msg) => return bad(StatusCode::BAD_REQUEST, &msg),
    };
    let Some(new_id) = plugin.get("id").and_then(Value::as_str).map(str::to_owned) else {
        return bad(StatusCode::BAD_REQUEST, "the plugin has no `id`");
    };
    if checked(&new_id).is_err() {
        return bad(
            StatusCode::BAD_REQUEST,
            &format!("plugin id `{new_id}` is not a safe name: use 1-64 of a-z, 0-9, `_`, `-`"),
        );
    }
    if let Some(id) = id {
        if id != new_id {
            return bad(
                StatusCode::BAD_REQUEST,
                &format!("the body's id `{new_id}` is not the path's `{id}`"),
            );
        }
    }
    let file = format!("{new_id}.json");
    let text = match serde_json::to_vec_pretty(&plugin) {
        Ok(t) => t,
        Err(e) => {
            return bad(
                StatusCode::BAD_REQUEST,
                &format!("cannot encode the plugin: {e}"),
            )
        }
    };
    if let Err(e) = std::fs::create_dir_all(dir) {
        return bad(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("cannot create the plugins directory: {e}"),
        );
    }
    let target = dir.join(&file);
    let previous = std::fs::read(&target).ok();
    if let Err(e) = atomic_write(dir, &file, &text) {
        return bad(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("cannot write {file}: {e}"),
        );
    }
    let status = if previous.is_some() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    match reloader.reload(Trigger::Admin).await {
        Ok(_) => {
            if let Some(old) = &previous {
                let _kept = atomic_write(dir, &format!("{file}.bak"), old);
            }
            respond(status, &json!({"success": true, "data": plugin}))
        }
        Err(errors) => {
            let _restored = match &previous {
                Some(old) => atomic_write(dir, &file, old),
                None => std::fs::remove_file(&target),
            };
            rejected(&errors)
        }
    }
}

async fn delete(reloader: &Reloader, dir: &Path, id: &str) -> Reply {
    if checked(id).is_err() || read_plugin(dir, id).is_none() {
        return not_found(id);
    }
    let file = dir.join(format!("{id}.json"));
    let backup = dir.join(format!("{id}.json.bak"));
    if let Err(e) = std::fs::rename(&file, &backup) {
        return bad(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("cannot remove {id}.json: {e}"),
        );
    }
    match reloader.reload(Trigger::Admin).await {
        Ok(_) => {
            if read_active(dir).as_deref() == Some(id) {
                let _gone = std::fs::remove_file(dir.join(".active"));
            }
            ok(&json!({"success": true, "data": {"id": id, "deleted": true}}))
        }
        Err(errors) => {
            let _restored = std::fs::rename(&backup, &file);
            rejected(&errors)
        }
    }
}

/// The body as Libre WebUI plugin JSON: given so, or converted from Switchyard's
/// upstream shape `{name, base_url, auth: {type: bearer, key: "${VAR}"}, models}`.
fn plugin_from(body: &[u8]) -> Result<Value, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not valid JSON: {e}"))?;
    let Value::Object(obj) = value else {
        return Err(
            "expected a JSON object (a Libre WebUI plugin or a Switchyard upstream)".to_owned(),
        );
    };
    if obj.contains_key("id") {
        let endpoint = obj
            .get("endpoint")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !endpoint
            .trim_end_matches('/')
            .ends_with("/chat/completions")
        {
            return Err("`endpoint` must be an OpenAI …/chat/completions URL".to_owned());
        }
        if let Some(auth) = obj.get("auth") {
            if auth.get("key_env").and_then(Value::as_str).is_none() {
                return Err(
                    "`auth` needs `key_env` (the environment variable holding the key)".to_owned(),
                );
            }
        }
        return Ok(Value::Object(obj));
    }
    from_upstream(&obj)
}

fn from_upstream(obj: &Map<String, Value>) -> Result<Value, String> {
    let (Some(name), Some(base)) = (
        obj.get("name").and_then(Value::as_str),
        obj.get("base_url").and_then(Value::as_str),
    ) else {
        return Err("a plugin needs `id` and `endpoint` (Libre WebUI) or `name` and `base_url` (Switchyard upstream)".to_owned());
    };
    let mut plugin = json!({
        "id": name,
        "name": name,
        "type": "completion",
        "endpoint": format!("{}/chat/completions", base.trim_end_matches('/')),
        "model_map": obj.get("models").cloned().unwrap_or_else(|| json!([])),
    });
    if let Some(auth) = obj.get("auth") {
        let key = auth.get("key").and_then(Value::as_str).unwrap_or_default();
        let var = key
            .strip_prefix("${")
            .and_then(|k| k.strip_suffix('}'))
            .ok_or(
                "`auth.key` must name an environment variable as `${VAR}` (no key in the file)",
            )?;
        let (header, prefix) = match auth.get("type").and_then(Value::as_str) {
            Some("bearer") | None => ("Authorization".to_owned(), "Bearer ".to_owned()),
            Some("header") => (
                auth.get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("Authorization")
                    .to_owned(),
                auth.get("prefix")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            ),
            Some(other) => return Err(format!("auth type `{other}` cannot be a plugin")),
        };
        plugin["auth"] = json!({"header": header, "prefix": prefix, "key_env": var});
    }
    Ok(plugin)
}

/// The content of the `plugin` file field of a `multipart/form-data` body.
fn multipart_file<'a>(content_type: &str, body: &'a [u8]) -> Result<&'a [u8], String> {
    use switchyard_dialects::multipart::{boundary, field, FieldError};
    let boundary =
        boundary(content_type).ok_or("expected a multipart/form-data body with a boundary")?;
    match field(body, boundary, "plugin") {
        Ok(range) => Ok(&body[range]),
        Err(FieldError::Unterminated) => Err("the multipart body is not terminated".to_owned()),
        Err(FieldError::Missing) => Err("the multipart body has no `plugin` file field".to_owned()),
    }
}

/// Writes `<dir>/<name>` through `<name>.tmp`, synced, then renamed over it.
fn atomic_write(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(name))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _synced = d.sync_all();
    }
    Ok(())
}

fn rejected(errors: &switchyard_config::ConfigErrors) -> Reply {
    let msg = errors
        .0
        .iter()
        .map(|e| format!("{}: {}", e.path, e.message))
        .collect::<Vec<_>>()
        .join("; ");
    bad(
        StatusCode::BAD_REQUEST,
        &format!("the plugin was not applied (nothing changed): {msg}"),
    )
}

fn not_found(id: &str) -> Reply {
    let shown: String = id.chars().take(64).collect();
    bad(StatusCode::NOT_FOUND, &format!("no plugin `{shown}`"))
}

fn bad(status: StatusCode, message: &str) -> Reply {
    let kind = if status.is_server_error() {
        "server_error"
    } else {
        "invalid_request_error"
    };
    let code = match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::BAD_REQUEST => "invalid_plugin",
        _ => "plugin_error",
    };
    error(status, kind, code, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_safe_file_names() {
        for good in ["acme", "a_b-9", "x"] {
            assert!(checked(good).is_ok(), "{good}");
        }
        for bad in ["", "../x", "a/b", "A", "a.json", ".active", &"a".repeat(65)] {
            assert!(checked(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_upstream_becomes_a_plugin_without_its_key() {
        let up = json!({"name": "own", "base_url": "http://h/v1/", "auth": {"type": "bearer", "key": "${K}"}, "models": ["m"]});
        let p = plugin_from(up.to_string().as_bytes()).unwrap();
        assert_eq!(p["endpoint"], "http://h/v1/chat/completions");
        assert_eq!(p["auth"]["key_env"], "K");
        assert_eq!(p["model_map"], json!(["m"]));
        let literal = json!({"name": "own", "base_url": "http://h/v1", "auth": {"type": "bearer", "key": "sk-lit"}});
        let err = plugin_from(literal.to_string().as_bytes()).unwrap_err();
        assert!(!err.contains("sk-lit"), "{err}");
    }

    #[test]
    fn multipart_finds_the_plugin_field() {
        let body = b"--b\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nx\r\n--b\r\nContent-Disposition: form-data; name=\"plugin\"; filename=\"p.json\"\r\n\r\n{}\r\n--b--\r\n";
        assert_eq!(
            multipart_file("multipart/form-data; boundary=b", body).unwrap(),
            b"{}"
        );
        assert!(multipart_file("application/json", body).is_err());
        assert!(multipart_file("multipart/form-data; boundary=zz", body).is_err());
    }
}
