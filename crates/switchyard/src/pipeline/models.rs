//! `GET /v1/models` and `GET /v1/models/{id}`: the catalogue's listing, OpenAI-shaped.
//! An id that routes (an explicit route, an alias) but is not listed still answers.
//! A caller whose key is limited to some models sees only those; any other id is
//! `model_not_found`, exactly like an unknown one.

use super::respond::json_response;
use crate::auth::account::Account;
use crate::catalog::Listed;
use crate::error::GatewayError;
use crate::relay::ResponseBody;
use crate::snapshot::Snapshot;
use http::{Response, StatusCode};
use serde_json::json;

/// The whole listing (fetching lists never fetched yet, bounded by `fetch_timeout`).
pub(super) async fn list(snap: &Snapshot, account: Option<&Account>) -> Response<ResponseBody> {
    snap.catalog.refresh(&snap.upstreams.list, false).await;
    let index = snap.catalog.index();
    let data: Vec<_> = index
        .listing
        .iter()
        .filter(|m| account.is_none_or(|a| a.may_use(&m.id)))
        .map(model_json)
        .collect();
    json_response(StatusCode::OK, &json!({"object": "list", "data": data}))
}

/// One model; `encoded_id` is the path segment as sent (percent-encoded, since ids
/// like `upstream/model` contain a slash).
pub(super) async fn get(
    snap: &Snapshot,
    encoded_id: &str,
    account: Option<&Account>,
) -> Result<Response<ResponseBody>, GatewayError> {
    let id = percent_encoding::percent_decode_str(encoded_id).decode_utf8_lossy();
    if account.is_some_and(|a| !a.may_use(&id)) {
        return Err(GatewayError::UnknownModel(id.into_owned()));
    }
    snap.catalog.refresh(&snap.upstreams.list, false).await;
    let index = snap.catalog.index();
    if let Some(m) = index.listing.iter().find(|m| m.id == id) {
        return Ok(json_response(StatusCode::OK, &model_json(m)));
    }
    if snap.serving(&id).is_none() {
        return Err(GatewayError::UnknownModel(id.into_owned()));
    }
    // Routable but not listed (a hidden kind, an `upstream/model` id of a model only
    // one upstream serves): owned by the upstreams that serve it, as in the listing.
    let names = |ups: &[usize]| -> Vec<&str> {
        ups.iter()
            .filter_map(|&u| snap.upstreams.list.get(u).map(|up| &*up.name))
            .collect()
    };
    let owners = match index.models.get(&*id) {
        Some(targets) => names(&targets.upstreams),
        None => id
            .split_once('/')
            .and_then(|(up, _)| snap.upstreams.list.iter().find(|u| &*u.name == up))
            .map(|u| vec![&*u.name])
            .unwrap_or_default(),
    };
    let owned_by = if owners.is_empty() {
        "switchyard".to_owned()
    } else {
        owners.join(",")
    };
    Ok(json_response(
        StatusCode::OK,
        &json!({"id": id, "object": "model", "created": 0, "owned_by": owned_by}),
    ))
}

fn model_json(m: &Listed) -> serde_json::Value {
    json!({"id": m.id, "object": "model", "created": m.created, "owned_by": m.owned_by})
}
