//! `GET /admin/v1/runtimes/{game_id}/logs?tail=&since=&follow=`: the last
//! lines of the game's current container (admin surface only).
//!
//! - `tail`: 0–[`MAX_TAIL`] lines, default [`DEFAULT_TAIL`]; `since`: RFC
//!   3339, exclusive; `follow`: `true`/`false` (or `1`/`0`). Anything else
//!   is `400 invalid_request`, before Docker is asked.
//! - Without `follow`: one JSON document, oldest line first, at most
//!   [`MAX_BYTES`] of text; `truncated` says the cap dropped older lines.
//! - With `follow`: `text/plain`, the selected lines then every new one,
//!   one per line (stdout and stderr interleaved as Docker delivers them);
//!   the response ends when the container stops or the client goes away.
//! - `404 not_found` when the game has no record, its record is `removed`
//!   or its container is gone; `503 docker_unavailable` when Docker is
//!   unreachable. Reading logs is not an operation: no lock, no audit row.

use actix_web::web::{self, Bytes};
use actix_web::HttpResponse;
use futures_util::StreamExt;
use rtm_domain::ports::{LogLine, LogQuery, Ports};
use rtm_domain::service::LogsError;
use rtm_domain::ErrorCode;
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;

use super::dto;
use super::error::{error_chain, ApiError};
use super::AppState;

/// Lines returned when `tail` is not given.
pub const DEFAULT_TAIL: u32 = 200;
/// Largest accepted `tail`.
pub const MAX_TAIL: u32 = 5000;
/// Most text returned in one (non-follow) answer: 1 MiB.
pub const MAX_BYTES: usize = 1 << 20;

/// The query string.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsParams {
    pub tail: Option<String>,
    pub since: Option<String>,
    pub follow: Option<String>,
}

/// One line of the JSON answer.
#[derive(Debug, Serialize)]
pub struct LineView {
    pub stream: &'static str,
    /// When Docker recorded it (RFC 3339, UTC), when known; usable as the
    /// next `since`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    pub text: String,
}

impl From<LogLine> for LineView {
    fn from(l: LogLine) -> Self {
        Self {
            stream: l.stream.as_str(),
            time: l.at.and_then(|t| t.format(&Rfc3339).ok()),
            text: l.text,
        }
    }
}

/// The JSON answer.
#[derive(Debug, Serialize)]
pub struct LogsView {
    pub game_id: String,
    pub container_id: String,
    pub lines: Vec<LineView>,
    pub truncated: bool,
}

fn q_tail(v: &Option<String>) -> Result<u32, ApiError> {
    match v.as_deref() {
        None | Some("") => Ok(DEFAULT_TAIL),
        Some(s) => match s.parse::<u32>() {
            Ok(n) if n <= MAX_TAIL => Ok(n),
            _ => Err(ApiError::invalid_request(format!(
                "tail: {s:?} is not a whole number between 0 and {MAX_TAIL}"
            ))),
        },
    }
}

fn q_follow(v: &Option<String>) -> Result<bool, ApiError> {
    match v.as_deref() {
        None | Some("") | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") => Ok(true),
        Some(s) => Err(ApiError::invalid_request(format!(
            "follow: {s:?} is not true or false"
        ))),
    }
}

fn logs_error(e: &LogsError) -> ApiError {
    match e {
        LogsError::NoContainer(game) => {
            ApiError::not_found(format!("game {game} has no container"))
        }
        LogsError::Store(e) => ApiError::store("reading a runtime record for its logs", e),
        LogsError::Runtime(inner) if e.code() == ErrorCode::DockerUnavailable => {
            tracing::warn!(error = %error_chain(inner), "container logs not read");
            ApiError::new(
                ErrorCode::DockerUnavailable,
                "the Docker engine is unavailable",
            )
        }
        LogsError::Runtime(inner) => ApiError::internal("reading container logs", inner),
    }
}

/// The handler.
pub async fn logs<P: Ports>(
    state: web::Data<AppState<P>>,
    path: web::Path<String>,
    query: web::Query<LogsParams>,
) -> Result<HttpResponse, ApiError> {
    let game = dto::parse_game_id(&path)?;
    let q = LogQuery {
        tail: q_tail(&query.tail)?,
        since: dto::q_since(&query.since)?,
        max_bytes: MAX_BYTES,
    };
    if q_follow(&query.follow)? {
        let (container, lines) = state
            .service
            .follow_container_logs(&game, &q)
            .await
            .map_err(|e| logs_error(&e))?;
        // An error mid-stream cannot change the status any more: it ends
        // the response (and is logged).
        let body = lines
            .take_while(move |item| {
                let go = match item {
                    Ok(_) => true,
                    Err(e) => {
                        tracing::warn!(%container, error = %error_chain(e), "log follow ended");
                        false
                    }
                };
                std::future::ready(go)
            })
            .filter_map(|item| {
                std::future::ready(item.ok().map(|l| {
                    let mut text = l.text;
                    text.push('\n');
                    Ok::<_, std::convert::Infallible>(Bytes::from(text))
                }))
            });
        return Ok(HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
            .streaming(body));
    }
    let (container, logs) = state
        .service
        .container_logs(&game, &q)
        .await
        .map_err(|e| logs_error(&e))?;
    Ok(HttpResponse::Ok().json(LogsView {
        game_id: game.to_string(),
        container_id: container.to_string(),
        lines: logs.lines.into_iter().map(LineView::from).collect(),
        truncated: logs.truncated,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_checked() {
        assert_eq!(q_tail(&None).ok(), Some(DEFAULT_TAIL));
        assert_eq!(q_tail(&Some("0".into())).ok(), Some(0));
        assert_eq!(q_tail(&Some("5000".into())).ok(), Some(5000));
        for bad in ["5001", "-1", "x", "1.5"] {
            assert!(q_tail(&Some(bad.into())).is_err(), "{bad}");
        }
        assert_eq!(q_follow(&Some("true".into())).ok(), Some(true));
        assert_eq!(q_follow(&None).ok(), Some(false));
        assert!(q_follow(&Some("yes".into())).is_err());
    }
}
