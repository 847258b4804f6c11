//! The API as a whole: every route is documented, and malformed input is a 4xx `ApiError`.

use std::collections::{BTreeMap, BTreeSet};

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::routing::get;
use cone_api::ApiError;
use tower::ServiceExt;

use crate::server::{router, routes, testing};
use crate::services::auth::secret_hash;
use crate::state::AppState;

const METHODS: [Method; 5] = [Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE];

/// The path templates a router holds, read from its `Debug` text (axum lists each route's path there; it has
/// no other way to enumerate them). Only `/api/v1` paths are kept.
fn api_paths(router: &Router<AppState>) -> BTreeSet<String> {
    let text = format!("{router:?}");
    let paths: BTreeSet<String> =
        text.split('"').filter(|piece| piece.starts_with("/api/v1/")).map(str::to_string).collect();
    assert!(text.contains("\"/healthz\""), "the router's Debug text no longer lists paths:\n{text}");
    paths
}

/// The methods each documented path has operations for.
fn documented() -> BTreeMap<String, BTreeSet<Method>> {
    let (_, doc) = crate::api::routes();
    let json = serde_json::to_value(&doc.paths).unwrap();
    let mut out = BTreeMap::new();
    for (path, item) in json.as_object().unwrap() {
        let methods =
            METHODS.iter().filter(|m| item.get(m.as_str().to_lowercase()).is_some()).cloned().collect::<BTreeSet<_>>();
        out.insert(path.clone(), methods);
    }
    out
}

async fn state() -> (AppState, crate::store::testing::Keep) {
    let (db, keep) = crate::store::testing::sqlite().await;
    (testing::state(db, ""), keep)
}

/// Every method the router answers on each `/api/v1` path (anything but 405), asked without credentials.
async fn routed(routes: Router<AppState>, state: AppState) -> BTreeMap<String, BTreeSet<Method>> {
    let mut out = BTreeMap::new();
    let app = routes.clone().with_state(state);
    for path in api_paths(&routes) {
        let concrete: String =
            path.split('/').map(|seg| if seg.starts_with('{') { "1" } else { seg }).collect::<Vec<_>>().join("/");
        let mut methods = BTreeSet::new();
        for method in METHODS {
            let req = Request::builder().method(method.clone()).uri(&concrete).body(Body::empty()).unwrap();
            let status = app.clone().oneshot(req).await.unwrap().status();
            if status != StatusCode::METHOD_NOT_ALLOWED {
                methods.insert(method);
            }
        }
        out.insert(path, methods);
    }
    out
}

/// What the router serves under `/api/v1` and what the document describes differ in nothing: a route added
/// beside `api::routes` (a plain `.route(...)`), or a method added to a documented path, fails here.
#[tokio::test]
async fn every_api_route_and_method_is_in_the_openapi_document() {
    let (state, _keep) = state().await;
    let served = routed(routes(), state.clone()).await;
    assert!(served.len() >= 15, "too few routes found: {served:?}");
    assert_eq!(served, documented());

    // The check can fail: an undocumented route, and an undocumented method on a documented path.
    let sneaky = routes().route("/api/v1/sneaky", get(|| async { "hidden" }));
    let served = routed(sneaky, state.clone()).await;
    assert_eq!(served.get("/api/v1/sneaky"), Some(&BTreeSet::from([Method::GET])));
    assert_ne!(served, documented());
    let extra = routes().route("/api/v1/me", axum::routing::delete(|| async { "gone" }));
    let served = routed(extra, state).await;
    assert_eq!(served.get("/api/v1/me"), Some(&BTreeSet::from([Method::GET, Method::DELETE])));
}

#[tokio::test]
async fn the_document_is_served_and_describes_errors_and_the_bearer_scheme() {
    let (state, _keep) = state().await;
    let app = router(state);
    let req = Request::builder().uri("/api/v1/openapi.json").body(Body::empty()).unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 22).await.unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    assert_eq!(doc["security"][0]["bearer"], serde_json::json!([]));
    assert_eq!(doc["paths"]["/api/v1/openapi.json"]["get"]["security"], serde_json::json!([{}]));
    let get_task = &doc["paths"]["/api/v1/tasks/{id}"]["get"];
    let params: Vec<&str> =
        get_task["parameters"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(params, ["id", "known_state", "wait_secs"]);
    assert_eq!(
        get_task["responses"]["404"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ApiError"
    );
    for schema in ["ApiError", "Task", "CreateTask", "Entitlement", "DriftPage"] {
        assert!(doc["components"]["schemas"].get(schema).is_some(), "no schema {schema}");
    }
    // Every reference resolves.
    fn refs<'a>(v: &'a serde_json::Value, out: &mut Vec<&'a str>) {
        match v {
            serde_json::Value::Object(fields) => {
                out.extend(fields.get("$ref").and_then(|r| r.as_str()));
                fields.values().for_each(|f| refs(f, out));
            }
            serde_json::Value::Array(items) => items.iter().for_each(|i| refs(i, out)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    refs(&doc, &mut found);
    assert!(found.len() > 20);
    for r in found {
        let name = r.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("unexpected $ref {r}"));
        assert!(doc["components"]["schemas"].get(name).is_some(), "{r} does not resolve");
    }
}

#[tokio::test]
async fn malformed_input_is_a_4xx_api_error() {
    let (state, _keep) = state().await;
    let app = router(state.clone());
    let token = "t0k3n";
    state.db.set_password("alice", "x").await.unwrap();
    let alice = state.db.user_by_name("alice").await.unwrap().unwrap();
    state.db.insert_access_token(&secret_hash(token), alice.id, state.now(), state.now() + 60).await.unwrap();
    let call = async |method: Method, uri: &str, body: Option<&str>| {
        let mut req = Request::builder().method(method).uri(uri).header("authorization", format!("Bearer {token}"));
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let resp = app.clone().oneshot(req.body(Body::from(body.unwrap_or("").to_string())).unwrap()).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
        if status.is_success() {
            return (status.as_u16(), String::new());
        }
        let err: ApiError = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{uri}: not an ApiError ({e}): {}", String::from_utf8_lossy(&bytes)));
        (status.as_u16(), err.message)
    };
    let (status, message) = call(Method::GET, "/api/v1/tasks/x", None).await;
    assert_eq!(status, 400, "{message}");
    let (status, message) = call(Method::GET, "/api/v1/tasks?page_size=many", None).await;
    assert_eq!(status, 400);
    assert!(message.contains("page_size"), "{message}");
    let (status, message) = call(Method::GET, "/api/v1/tasks?scope=everyone", None).await;
    assert!(status == 400 && message.contains("scope"), "{message}");
    let (status, message) = call(Method::GET, "/api/v1/tasks?state=done", None).await;
    assert!(status == 400 && message.contains("open, closed, live, all, or a task state"), "{message}");
    assert_eq!(call(Method::GET, "/api/v1/tasks?state=granted", None).await.0, 200);
    let (status, message) = call(Method::GET, "/api/v1/tasks?scope=all", None).await;
    assert!(status == 403 && message.contains("Only Cone administrators"), "{message}");
    let (status, message) = call(Method::GET, "/api/v1/tasks?app_id=aws", None).await;
    assert!(status == 400 && message.contains("`app_id` and `entitlement_id` together"), "{message}");
    let (status, _) = call(Method::GET, "/api/v1/entitlements?kind=a%00b", None).await;
    assert_eq!(status, 400);
    let (status, message) = call(Method::POST, "/api/v1/tasks", Some(r#"{"app_id": 5}"#)).await;
    assert!(status == 400 && message.contains("app_id"), "{message}");
    let (status, message) =
        call(Method::POST, "/api/v1/tasks", Some(r#"{"app_id": "a\u0000", "entitlement_id": "e"}"#)).await;
    assert!(status == 400 && message.contains("NUL"), "{message}");
    let (status, _) = call(Method::POST, "/api/v1/tasks", Some("{")).await;
    assert_eq!(status, 400);
    let (status, _) = call(Method::POST, "/api/v1/drop", None).await;
    assert_eq!(status, 415);
    let (status, _) = call(Method::GET, "/api/v1/nothing-here", None).await;
    assert_eq!(status, 404);
    let (status, _) = call(Method::DELETE, "/api/v1/me", None).await;
    assert_eq!(status, 405);
    let (status, _) = call(Method::GET, "/api/v1/tasks?page_token=9223372036854775807", None).await;
    assert_eq!(status, 200);
    let (status, _) = call(Method::GET, "/api/v1/entitlements?page_token=9223372036854775807", None).await;
    assert_eq!(status, 200);
}

/// The sign-in endpoints hold each client to `clients.sign_in_rate` (after its burst) and answer 429 with
/// `Retry-After`; another client, and everything after sign-in, goes on.
#[tokio::test]
async fn sign_in_endpoints_are_limited_per_client() {
    let (db, _keep) = crate::store::testing::sqlite().await;
    let s = testing::state(db, "clients: { sign_in_rate: 1, sign_in_burst: 2 }");
    let token = testing::person(&s, "alice").await;
    let send = |from: &'static str, method: Method, uri: &'static str| {
        let app = router(s.clone());
        let token = token.clone();
        async move {
            let peer: std::net::SocketAddr = format!("{from}:40000").parse().unwrap();
            let req = Request::builder()
                .method(method)
                .uri(uri)
                .header("authorization", format!("Bearer {token}"))
                .extension(axum::extract::ConnectInfo(peer))
                .body(Body::empty())
                .unwrap();
            app.oneshot(req).await.unwrap()
        }
    };
    for _ in 0..2 {
        let r = send("192.0.2.1", Method::POST, "/oauth/device/code").await;
        assert_ne!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    }
    for uri in ["/oauth/device/code", "/oauth/token", "/console/login"] {
        let r = send("192.0.2.1", Method::POST, uri).await;
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "{uri}");
        let wait: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=2).contains(&wait), "{wait}");
        let body = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
        let e: ApiError = serde_json::from_slice(&body).unwrap();
        assert!(e.message.starts_with("Too many sign-in requests from your address"), "{}", e.message);
    }
    let r = send("192.0.2.1", Method::GET, "/console/login/oidc").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    // Another address has its own bucket; signed-in calls and the sign-in page itself are not limited.
    assert_ne!(send("192.0.2.2", Method::POST, "/oauth/device/code").await.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(send("192.0.2.1", Method::GET, "/api/v1/tasks").await.status(), StatusCode::OK);
    assert_eq!(send("192.0.2.1", Method::GET, "/console/login").await.status(), StatusCode::OK);
}
