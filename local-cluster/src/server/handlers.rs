//! Request handling: query parameters and bodies in, objects or `Status` out.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::request::Parts;
use http::{Method, Response, header};
use http_body_util::BodyExt;
use serde_json::Value;

use super::routes::{self, ResourcePath, Route};
use super::{Body, BoxError, error_response, json_response, stream_response};
use crate::aggregation;
use crate::discovery;
use crate::error::{ApiError, ApiResult, Reason};
use crate::objects::{
    self, DeleteOptions, FieldValidation, Propagation, Subresource, WriteOptions,
};
use crate::patch::{self, PatchType};
use crate::resources::ResourceType;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::state::State;
use crate::table::{self, Include};
use crate::watch::{self, WatchParams};

/// kube-apiserver's default for watches without `timeoutSeconds` (its minimum request timeout).
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(1800);

/// Per-server context.
pub struct Ctx {
    /// Cluster state.
    pub state: Arc<State>,
    /// `host:port` clients reach us at (announced in `/api`).
    pub server_address: String,
}

pub(super) type Query = HashMap<String, String>;

pub(super) fn parse_query(q: Option<&str>) -> Query {
    form_urlencoded::parse(q.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

pub(super) fn flag(q: &Query, key: &str) -> bool {
    q.get(key)
        .is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// `/apis/{group}/{version}/...` → (group, version).
fn apis_group_version(path: &str) -> Option<(&str, &str)> {
    let mut segs = path.strip_prefix("/apis/")?.split('/');
    let group = segs.next().filter(|g| !g.is_empty())?;
    let version = segs.next().filter(|v| !v.is_empty())?;
    Some((group, version))
}

fn not_found_path() -> ApiError {
    ApiError::new(
        Reason::NotFound,
        "the server could not find the requested resource",
    )
}

/// Route one request.
pub async fn dispatch(ctx: &Ctx, parts: Parts, body: Bytes) -> Response<Body> {
    let state = &ctx.state;
    let path = parts.uri.path().to_string();
    if let Some((group, version)) = apis_group_version(&path)
        && let Some(apiservice) = aggregation::apiservice_for(state, group, version)
    {
        let pq = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or(path.clone());
        return match aggregation::forward(
            state,
            &apiservice,
            parts.method.clone(),
            &pq,
            &parts.headers,
            body,
            aggregation::LOCAL_ADMIN,
        )
        .await
        {
            Ok(resp) => resp.map(|b| b.map_err(|e| Box::new(e) as BoxError).boxed()),
            Err(e) => error_response(&e),
        };
    }
    let route = routes::parse(&path, |g, v, p| {
        state.registry.find(g, v, p).is_some_and(|r| r.namespaced)
    });
    if !matches!(route, Route::Resource(_)) && parts.method != Method::GET {
        return error_response(&ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        ));
    }
    let result = match route {
        Route::Version => Ok(json_response(200, &discovery::version(), &[])),
        Route::Health => {
            let mut resp = Response::new(
                http_body_util::Full::new(Bytes::from_static(b"ok"))
                    .map_err(|e| match e {})
                    .boxed(),
            );
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            Ok(resp)
        }
        Route::Api => Ok(json_response(
            200,
            &discovery::api_versions(&ctx.server_address),
            &[],
        )),
        Route::Apis => {
            let extra = aggregation::aggregated_group_versions(state);
            Ok(json_response(
                200,
                &discovery::api_group_list(&state.registry, &extra),
                &[],
            ))
        }
        Route::Group(group) => {
            let extra = aggregation::aggregated_group_versions(state);
            discovery::api_group(&state.registry, &extra, &group)
                .map(|g| json_response(200, &g, &[]))
                .ok_or_else(not_found_path)
        }
        Route::GroupVersion { group, version } => {
            discovery::resource_list(&state.registry, &group, &version)
                .map(|l| json_response(200, &l, &[]))
                .ok_or_else(not_found_path)
        }
        Route::OpenApiV3 => Ok(json_response(
            200,
            &discovery::openapi_v3_root(&state.registry),
            &[],
        )),
        Route::OpenApiV3GroupVersion { group, version } => {
            discovery::openapi_v3_group_version(&state.registry, &group, &version)
                .map(|d| json_response(200, &d, &[]))
                .ok_or_else(not_found_path)
        }
        Route::Resource(rp) => resource(ctx, &parts, &body, rp),
        Route::Unknown => Err(not_found_path()),
    };
    result.unwrap_or_else(|e| error_response(&e))
}

fn write_options(q: &Query) -> ApiResult<WriteOptions> {
    let field_validation = match q.get("fieldValidation").map(String::as_str) {
        None | Some("") => FieldValidation::default(),
        Some("Ignore") => FieldValidation::Ignore,
        Some("Warn") => FieldValidation::Warn,
        Some("Strict") => FieldValidation::Strict,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "fieldValidation: invalid value {other:?}: must be one of Ignore, Warn, Strict"
            )));
        }
    };
    Ok(WriteOptions {
        dry_run: q.get("dryRun").is_some_and(|v| v == "All"),
        field_manager: q.get("fieldManager").filter(|m| !m.is_empty()).cloned(),
        field_validation,
        apply: false,
    })
}

/// Request bodies must be JSON: kubectl's typed generators (`kubectl create namespace`,
/// `create configmap`, `auth can-i`) send protobuf, which needs the compiled Go types to decode.
fn require_json(parts: &Parts) -> ApiResult<()> {
    let ct = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if ct.starts_with("application/vnd.kubernetes.protobuf") || ct.starts_with("application/cbor") {
        return Err(ApiError::new(
            Reason::UnsupportedMediaType,
            format!(
                "local-cluster accepts JSON request bodies only, not {ct}; use `kubectl apply -f` or `kubectl create -f` with a manifest"
            ),
        ));
    }
    Ok(())
}

fn json_body(body: &Bytes) -> ApiResult<Value> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!("couldn't decode the request body as JSON: {e}"))
    })
}

fn selectors(q: &Query) -> ApiResult<(LabelSelector, FieldSelector)> {
    let labels = LabelSelector::parse(
        q.get("labelSelector")
            .map(String::as_str)
            .unwrap_or_default(),
    )?;
    let fields = FieldSelector::parse(
        q.get("fieldSelector")
            .map(String::as_str)
            .unwrap_or_default(),
    )?;
    Ok((labels, fields))
}

fn delete_options(q: &Query, body: &Bytes) -> ApiResult<DeleteOptions> {
    let b: Value = if body.is_empty() {
        Value::Null
    } else {
        json_body(body)?
    };
    let policy = q.get("propagationPolicy").cloned().or_else(|| {
        b.get("propagationPolicy")
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    let orphan_flag = q
        .get("orphanDependents")
        .map(|v| v == "true")
        .or_else(|| b.get("orphanDependents").and_then(Value::as_bool));
    let propagation = match (policy.as_deref(), orphan_flag) {
        (Some("Orphan"), _) | (None, Some(true)) => Propagation::Orphan,
        (Some("Background" | "Foreground") | None, _) => Propagation::Background,
        (Some(other), _) => {
            return Err(ApiError::bad_request(format!(
                "unsupported propagationPolicy {other:?}"
            )));
        }
    };
    let dry_run = q.get("dryRun").is_some_and(|v| v == "All")
        || b.get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|v| v == "All"));
    Ok(DeleteOptions {
        propagation,
        uid: b
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_string),
        resource_version: b
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string),
        dry_run,
    })
}

fn verb(method: &Method, rp: &ResourcePath, watching: bool) -> &'static str {
    match (method.as_str(), rp.name.is_some()) {
        ("GET", true) => "get",
        ("GET", false) if watching => "watch",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => "unknown",
    }
}

fn accept_table(parts: &Parts, q: &Query) -> Option<Include> {
    let accept = parts
        .headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    table::wants_table(accept).then(|| Include::parse(q.get("includeObject").map(String::as_str)))
}

fn resource(ctx: &Ctx, parts: &Parts, body: &Bytes, rp: ResourcePath) -> ApiResult<Response<Body>> {
    let state = &ctx.state;
    let q = parse_query(parts.uri.query());
    let rt = state
        .registry
        .find(&rp.group, &rp.version, &rp.plural)
        .ok_or_else(not_found_path)?;
    if !rt.namespaced && rp.namespace.is_some() {
        return Err(not_found_path());
    }
    if rt.namespaced && rp.name.is_some() && rp.namespace.is_none() {
        return Err(not_found_path());
    }
    match rp.subresource.as_deref() {
        None => {}
        Some("status") if rt.status_subresource => {}
        Some("scale") if rt.scale.is_some() => {}
        Some(_) => return Err(not_found_path()),
    }
    if matches!(parts.method, Method::POST | Method::PUT) {
        require_json(parts)?;
    }
    let watching = flag(&q, "watch");
    let verb = verb(&parts.method, &rp, watching);
    let collection_only = matches!(verb, "list" | "watch" | "create" | "deletecollection");
    if !rt.allows(verb)
        || (collection_only == rp.name.is_some())
        || (rp.subresource.is_some() && collection_only)
    {
        return Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({verb} {})",
            rt.plural
        )));
    }
    let ns = rp.namespace.as_deref();
    let name = rp.name.as_deref().unwrap_or_default();
    let sub = if rp.subresource.as_deref() == Some("status") {
        Subresource::Status
    } else {
        Subresource::Main
    };
    let is_scale = rp.subresource.as_deref() == Some("scale");

    match verb {
        "get" => {
            let obj = if is_scale {
                objects::get_scale(state, &rt, ns, name)?
            } else {
                objects::get(state, &rt, ns, name)?
            };
            Ok(render_one(&rt, parts, &q, obj, is_scale))
        }
        "list" => {
            let (labels, fields) = selectors(&q)?;
            match accept_table(parts, &q) {
                Some(include) => {
                    let (items, rv) = objects::select(state, &rt, ns, &labels, &fields);
                    Ok(json_response(
                        200,
                        &table::table(&rt, &items, rv, include),
                        &[],
                    ))
                }
                None => Ok(json_response(
                    200,
                    &objects::list(state, &rt, ns, &labels, &fields),
                    &[],
                )),
            }
        }
        "watch" => {
            let (labels, fields) = selectors(&q)?;
            let resource_version = match q.get("resourceVersion").map(String::as_str) {
                None | Some("") | Some("0") => None,
                Some(v) => Some(v.parse::<u64>().map_err(|_| {
                    ApiError::bad_request(format!("invalid resourceVersion {v:?}"))
                })?),
            };
            let timeout = q
                .get("timeoutSeconds")
                .and_then(|t| t.parse::<u64>().ok())
                .filter(|t| *t > 0)
                .map(Duration::from_secs)
                .unwrap_or(DEFAULT_WATCH_TIMEOUT);
            let params = WatchParams {
                namespace: ns.map(str::to_string),
                labels,
                fields,
                resource_version,
                bookmarks: flag(&q, "allowWatchBookmarks"),
                send_initial_events: flag(&q, "sendInitialEvents"),
                timeout,
                table: accept_table(parts, &q),
            };
            let rx = watch::start(state.clone(), rt.clone(), params)?;
            Ok(stream_response(rx))
        }
        "create" => {
            let opts = write_options(&q)?;
            let written = objects::create(state, &rt, ns, json_body(body)?, &opts)?;
            Ok(json_response(201, &written.object, &written.warnings))
        }
        "update" => {
            let opts = write_options(&q)?;
            if is_scale {
                let scale = objects::update_scale(state, &rt, ns, name, &json_body(body)?, &opts)?;
                return Ok(json_response(200, &scale, &[]));
            }
            let written = objects::update(state, &rt, ns, name, json_body(body)?, sub, &opts)?;
            Ok(json_response(200, &written.object, &written.warnings))
        }
        "patch" => {
            let opts = write_options(&q)?;
            let ct = parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            let patch_type = PatchType::from_content_type(ct)?;
            let patch_body = patch::decode_body(body, patch_type)?;
            if is_scale {
                let scale =
                    objects::patch_scale(state, &rt, ns, name, patch_type, &patch_body, &opts)?;
                return Ok(json_response(200, &scale, &[]));
            }
            let written =
                objects::patch(state, &rt, ns, name, patch_type, &patch_body, sub, &opts)?;
            Ok(json_response(
                if written.created { 201 } else { 200 },
                &written.object,
                &written.warnings,
            ))
        }
        "delete" => {
            let opts = delete_options(&q, body)?;
            Ok(json_response(
                200,
                &objects::delete(state, &rt, ns, name, &opts)?,
                &[],
            ))
        }
        "deletecollection" => {
            let opts = delete_options(&q, body)?;
            let (labels, fields) = selectors(&q)?;
            Ok(json_response(
                200,
                &objects::delete_collection(state, &rt, ns, &labels, &fields, &opts)?,
                &[],
            ))
        }
        _ => Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        )),
    }
}

fn render_one(
    rt: &ResourceType,
    parts: &Parts,
    q: &Query,
    obj: Value,
    is_scale: bool,
) -> Response<Body> {
    match accept_table(parts, q).filter(|_| !is_scale) {
        Some(include) => {
            let rv = obj
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            json_response(200, &table::table(rt, &[obj], rv, include), &[])
        }
        None => json_response(200, &obj, &[]),
    }
}
