//! A **simulator** of Home Assistant's documented REST API (not Home Assistant): a few entities
//! of a demo home, bearer-token auth, `GET /api/`, `GET /api/states`, `GET /api/states/<id>`
//! and `POST /api/services/<domain>/<service>` for the light, switch, climate and
//! homeassistant services agents use. Answers the way Home Assistant does: 401 without the
//! token, 404 `Entity not found.`, 400 for unknown services. `fail_next(n)` makes the next `n`
//! requests answer 500, as an unwell installation would.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Map, Value, json};

pub struct HaSimulator {
    token: String,
    entities: Mutex<BTreeMap<String, Value>>,
    failures_left: AtomicU32,
    /// Every service call applied: (domain.service, body).
    calls: Mutex<Vec<(String, Value)>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn entity(id: &str, state: &str, attributes: Value) -> (String, Value) {
    let now = "2026-01-01T00:00:00+00:00";
    (
        id.to_string(),
        json!({"entity_id": id, "state": state, "attributes": attributes,
               "last_changed": now, "last_updated": now}),
    )
}

impl HaSimulator {
    /// The demo home: lights, a switch, a thermostat and a sensor.
    pub fn demo(token: &str) -> Arc<Self> {
        let entities = [
            entity(
                "light.living_room",
                "off",
                json!({"friendly_name": "Living room", "brightness": 0,
                       "supported_color_modes": ["color_temp"], "color_temp_kelvin": 2700}),
            ),
            entity(
                "light.porch",
                "off",
                json!({"friendly_name": "Porch", "brightness": 0,
                       "supported_color_modes": ["brightness"]}),
            ),
            entity(
                "switch.coffee_maker",
                "off",
                json!({"friendly_name": "Coffee maker"}),
            ),
            entity(
                "climate.hallway",
                "heat",
                json!({"friendly_name": "Hallway", "temperature": 20.0,
                       "current_temperature": 19.5, "min_temp": 7, "max_temp": 30,
                       "hvac_modes": ["off", "heat"]}),
            ),
            entity(
                "sensor.outdoor_temperature",
                "8.5",
                json!({"friendly_name": "Outdoor temperature", "unit_of_measurement": "°C"}),
            ),
        ];
        Arc::new(Self {
            token: token.to_string(),
            entities: Mutex::new(entities.into_iter().collect()),
            failures_left: AtomicU32::new(0),
            calls: Mutex::new(Vec::new()),
        })
    }

    /// The next `n` requests answer `500 Internal Server Error`.
    pub fn fail_next(&self, n: u32) {
        self.failures_left.store(n, Ordering::SeqCst);
    }

    /// Service calls applied so far.
    pub fn calls(&self) -> Vec<(String, Value)> {
        lock(&self.calls).clone()
    }

    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/api/", get(api_root))
            .route("/api/states", get(all_states))
            .route("/api/states/{entity_id}", get(one_state))
            .route("/api/services/{domain}/{service}", post(call_service))
            .with_state(self)
    }

    /// Serves on `listener` until the task is aborted.
    pub fn serve(
        self: Arc<Self>,
        listener: tokio::net::TcpListener,
    ) -> tokio::task::JoinHandle<()> {
        let app = self.router();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        })
    }

    /// Answers a refusal first when the token is wrong or a failure was asked for.
    fn gate(&self, headers: &HeaderMap) -> Option<Response> {
        let ok = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| t == self.token);
        if !ok {
            return Some((StatusCode::UNAUTHORIZED, "401: Unauthorized").into_response());
        }
        let failing = self
            .failures_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        failing.then(|| {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "500 Internal Server Error\n\nServer got itself in trouble",
            )
                .into_response()
        })
    }

    fn apply(
        &self,
        domain: &str,
        service: &str,
        body: &Map<String, Value>,
    ) -> Result<Value, String> {
        // The 400 message.
        let refuse = |msg: String| Err(msg);
        let Some(id) = body.get("entity_id").and_then(Value::as_str) else {
            return refuse("entity_id is required".into());
        };
        let mut entities = lock(&self.entities);
        let Some(e) = entities.get_mut(id) else {
            return refuse(format!(
                "Referenced entities {id} are missing or not currently available"
            ));
        };
        let entity_domain = id.split('.').next().unwrap_or_default();
        let generic = domain == "homeassistant";
        if !generic && domain != entity_domain {
            return refuse(format!(
                "Entity {id} does not support service {domain}.{service}"
            ));
        }
        match (entity_domain, service) {
            ("light" | "switch", "turn_on" | "turn_off" | "toggle") => {
                let on = match service {
                    "turn_on" => true,
                    "turn_off" => false,
                    _ => e["state"] != "on",
                };
                e["state"] = json!(if on { "on" } else { "off" });
                if entity_domain == "light" {
                    let level = match (body.get("brightness_pct"), body.get("brightness")) {
                        (Some(p), _) => p.as_f64().map(|p| (p.clamp(0.0, 100.0) * 2.55).round()),
                        (None, Some(b)) => b.as_f64(),
                        (None, None) => None,
                    };
                    let attrs = &mut e["attributes"];
                    match (on, level) {
                        (false, _) => attrs["brightness"] = json!(0),
                        (true, Some(l)) => attrs["brightness"] = json!(l.clamp(0.0, 255.0) as u64),
                        (true, None) if attrs["brightness"] == 0 => {
                            attrs["brightness"] = json!(255)
                        }
                        _ => {}
                    }
                    if let Some(k) = body.get("color_temp_kelvin") {
                        attrs["color_temp_kelvin"] = k.clone();
                    }
                }
            }
            ("climate", "set_temperature") => {
                let Some(t) = body.get("temperature").and_then(Value::as_f64) else {
                    return refuse("required key not provided @ data['temperature']".into());
                };
                e["attributes"]["temperature"] = json!(t);
            }
            ("climate", "turn_on" | "turn_off") => {
                e["state"] = json!(if service == "turn_on" { "heat" } else { "off" });
            }
            _ => return refuse(format!("Service {domain}.{service} not found.")),
        }
        Ok(e.clone())
    }
}

async fn api_root(State(sim): State<Arc<HaSimulator>>, headers: HeaderMap) -> Response {
    if let Some(r) = sim.gate(&headers) {
        return r;
    }
    Json(json!({"message": "API running."})).into_response()
}

async fn all_states(State(sim): State<Arc<HaSimulator>>, headers: HeaderMap) -> Response {
    if let Some(r) = sim.gate(&headers) {
        return r;
    }
    let all: Vec<Value> = lock(&sim.entities).values().cloned().collect();
    Json(all).into_response()
}

async fn one_state(
    State(sim): State<Arc<HaSimulator>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Some(r) = sim.gate(&headers) {
        return r;
    }
    match lock(&sim.entities).get(&id) {
        Some(e) => Json(e.clone()).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"message": "Entity not found."})),
        )
            .into_response(),
    }
}

async fn call_service(
    State(sim): State<Arc<HaSimulator>>,
    headers: HeaderMap,
    Path((domain, service)): Path<(String, String)>,
    body: Option<Json<Map<String, Value>>>,
) -> Response {
    if let Some(r) = sim.gate(&headers) {
        return r;
    }
    let body = body.map(|Json(b)| b).unwrap_or_default();
    match sim.apply(&domain, &service, &body) {
        Ok(changed) => {
            lock(&sim.calls).push((format!("{domain}.{service}"), Value::Object(body)));
            Json(json!([changed])).into_response()
        }
        Err(message) => {
            (StatusCode::BAD_REQUEST, Json(json!({ "message": message }))).into_response()
        }
    }
}
