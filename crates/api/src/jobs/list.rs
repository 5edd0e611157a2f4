//! Listing the jobs in a caller's scope (its tenant's; an AGENT key's own) through Temporal visibility: filters become a visibility query, pages
//! follow Temporal's own page tokens (hex-encoded, opaque to callers).

use std::time::{Duration, SystemTime};

use avb_workflows::search;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use temporalio_client::NamespacedClient;
use temporalio_client::grpc::WorkflowService;
use temporalio_common::protos::temporal::api::enums::v1::WorkflowExecutionStatus as ProtoStatus;
use temporalio_common::protos::temporal::api::workflow::v1::WorkflowExecutionInfo;
use temporalio_common::protos::temporal::api::workflowservice::v1::{
    CountWorkflowExecutionsRequest, ListWorkflowExecutionsRequest,
};

use super::JobScope;
use super::output::{resource_uri, status_url};
use super::view::{JobStatus, rfc3339};
use crate::state::ApiState;

pub const DEFAULT_PAGE_SIZE: u32 = 20;
pub const MAX_PAGE_SIZE: u32 = 100;

/// Filters of `list_jobs` (MCP) and `GET /api/v2/jobs` (query string).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobFilter {
    /// Only jobs of this tool, e.g. `generate_speech`.
    pub tool: Option<String>,
    /// Only jobs in this status: running, completed, failed, cancelled, terminated, timed_out.
    pub status: Option<String>,
    /// Only jobs created at or after this time (RFC 3339, e.g. `2026-11-23T10:00:00Z`).
    pub since: Option<String>,
    /// Only jobs created at or before this time (RFC 3339).
    pub until: Option<String>,
    /// Only jobs started by this key (its id, as `owner.id` of a job shows it; `jwt:<subject>`
    /// for a token). AGENT keys see their own jobs whatever this says.
    pub owner: Option<String>,
    /// Jobs per page, 1–100 (default 20).
    pub page_size: Option<u32>,
    /// `next_page_token` of the previous page.
    pub page_token: Option<String>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct JobSummary {
    pub job_id: String,
    pub tool: String,
    /// The id of the key (or `jwt:<subject>`) that started the job, when recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    pub status: JobStatus,
    pub created_at: Option<String>,
    pub closed_at: Option<String>,
    pub status_url: String,
    pub resource_uri: String,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct JobPage {
    /// Newest first.
    pub jobs: Vec<JobSummary>,
    /// Pass as `page_token` for the next page; absent on the last page.
    pub next_page_token: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error("{field}: {message}")]
    InvalidFilter {
        field: &'static str,
        message: String,
    },
    #[error("Temporal visibility is unavailable: {0}")]
    Unavailable(String),
}

impl From<ListError> for crate::core::problem::Problem {
    fn from(e: ListError) -> Self {
        use crate::core::problem::Problem;
        match e {
            ListError::InvalidFilter { field, message } => Problem::invalid(field, message),
            ListError::Unavailable(_) => Problem::unavailable(e.to_string()),
        }
    }
}

fn invalid(field: &'static str, message: impl Into<String>) -> ListError {
    ListError::InvalidFilter {
        field,
        message: message.into(),
    }
}

/// The longest owner a filter names, in characters.
const MAX_OWNER_CHARS: usize = 256;

/// The visibility query for a scope and filter; every value is checked or quoted, so nothing
/// from the caller reaches the query unvalidated.
pub fn visibility_query(
    scope: &JobScope,
    f: &JobFilter,
    job_tools: &[&str],
) -> Result<String, ListError> {
    let mut clauses = vec![format!(
        "{} = '{}'",
        search::TENANT.name(),
        quote(&scope.tenant)
    )];
    for owner in scope.owner.iter().chain(f.owner.iter()) {
        if owner.chars().count() > MAX_OWNER_CHARS || owner.chars().any(char::is_control) {
            return Err(invalid(
                "owner",
                format!("is not a key id (at most {MAX_OWNER_CHARS} printable characters)"),
            ));
        }
        clauses.push(format!("{} = '{}'", search::OWNER.name(), quote(owner)));
    }
    if let Some(tool) = &f.tool {
        // A mounted upstream tool (`<namespace>_<tool>`) is a job tool too; its characters are
        // checked, so the name is safe inside the quotes.
        let mounted_name = tool.contains('_')
            && tool.len() <= 128
            && tool
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !job_tools.contains(&tool.as_str()) && !mounted_name {
            return Err(invalid(
                "tool",
                format!(
                    "unknown job tool '{tool}'; valid: {}, or a mounted upstream tool                      (<server>_<tool>)",
                    job_tools.join(", ")
                ),
            ));
        }
        clauses.push(format!("{} = '{tool}'", search::TOOL.name()));
    }
    if let Some(status) = &f.status {
        let s = JobStatus::parse(status).ok_or_else(|| {
            let valid: Vec<_> = JobStatus::ALL.iter().map(|s| s.as_str()).collect();
            invalid(
                "status",
                format!("unknown status '{status}'; valid: {}", valid.join(", ")),
            )
        })?;
        clauses.push(format!("ExecutionStatus = '{}'", s.visibility_name()));
        match s {
            JobStatus::InputRequired => {
                clauses.push(format!("{} = 'approval'", search::AWAITING.name()));
            }
            JobStatus::Running => {
                let name = search::AWAITING.name();
                clauses.push(format!(
                    "({name} IS NULL OR {name} = '{}')",
                    search::AWAITING_NOTHING
                ));
            }
            _ => {}
        }
    }
    let since = parse_time("since", f.since.as_deref())?;
    let until = parse_time("until", f.until.as_deref())?;
    if let (Some(a), Some(b)) = (since, until)
        && a > b
    {
        return Err(invalid("until", "is before since"));
    }
    if let Some(t) = since {
        clauses.push(format!("StartTime >= '{}'", humantime::format_rfc3339(t)));
    }
    if let Some(t) = until {
        clauses.push(format!("StartTime <= '{}'", humantime::format_rfc3339(t)));
    }
    Ok(clauses.join(" AND "))
}

fn quote(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\'', "\\'")
}

fn parse_time(field: &'static str, value: Option<&str>) -> Result<Option<SystemTime>, ListError> {
    value
        .map(|v| {
            humantime::parse_rfc3339_weak(v).map_err(|e| {
                invalid(
                    field,
                    format!("'{v}' is not an RFC 3339 time ({e}); e.g. 2026-11-23T10:00:00Z"),
                )
            })
        })
        .transpose()
}

pub async fn list_jobs(
    state: &ApiState,
    scope: &JobScope,
    f: &JobFilter,
) -> Result<JobPage, ListError> {
    let tenant = scope.tenant.as_str();
    let job_tools = state.tools.job_tools();
    // A tool name that is not ours must be one mounted for this tenant now.
    if let Some(tool) = &f.tool
        && !job_tools.contains(&tool.as_str())
        && state.upstreams.catalog_for(tenant).get(tool).is_none()
    {
        return Err(invalid(
            "tool",
            format!(
                "unknown job tool '{tool}'; valid: {}, or a mounted upstream tool \
                 (<server>_<tool>, see tools/list)",
                job_tools.join(", ")
            ),
        ));
    }
    let query = visibility_query(scope, f, &job_tools)?;
    let page_size = f.page_size.unwrap_or(DEFAULT_PAGE_SIZE);
    if !(1..=MAX_PAGE_SIZE).contains(&page_size) {
        return Err(invalid(
            "page_size",
            format!("{page_size} is out of range; use 1 to {MAX_PAGE_SIZE}"),
        ));
    }
    let next_page_token = match &f.page_token {
        Some(t) => decode_hex(t)
            .ok_or_else(|| invalid("page_token", "is not a token this server issued"))?,
        None => Vec::new(),
    };
    let mut client = state.temporal.clone();
    let req = ListWorkflowExecutionsRequest {
        namespace: client.namespace(),
        page_size: i32::try_from(page_size).unwrap_or(20),
        next_page_token,
        query,
    };
    let resp = WorkflowService::list_workflow_executions(&mut client, tonic_request(req))
        .await
        .map_err(|e| {
            if e.code() == tonic_code_invalid() {
                invalid(
                    "page_token",
                    format!("rejected by Temporal: {}", e.message()),
                )
            } else {
                ListError::Unavailable(e.message().to_string())
            }
        })?
        .into_inner();
    let public_url = state.config.public_url();
    let jobs = resp
        .executions
        .iter()
        .filter_map(|info| summary(info, &public_url))
        .collect();
    Ok(JobPage {
        jobs,
        next_page_token: (!resp.next_page_token.is_empty())
            .then(|| encode_hex(&resp.next_page_token)),
    })
}

/// How many jobs are in `scope` (`avb admin keys` counts each key's jobs with it).
pub async fn count_jobs(
    client: &temporalio_client::Client,
    scope: &JobScope,
) -> Result<u64, ListError> {
    let query = visibility_query(scope, &JobFilter::default(), &[])?;
    let mut client = client.clone();
    let req = CountWorkflowExecutionsRequest {
        namespace: client.namespace(),
        query,
    };
    let resp = WorkflowService::count_workflow_executions(&mut client, tonic_request(req))
        .await
        .map_err(|e| ListError::Unavailable(e.message().to_string()))?;
    Ok(u64::try_from(resp.into_inner().count).unwrap_or(0))
}

fn tonic_request<T>(t: T) -> temporalio_client::tonic::Request<T> {
    temporalio_client::tonic::Request::new(t)
}

fn tonic_code_invalid() -> temporalio_client::tonic::Code {
    temporalio_client::tonic::Code::InvalidArgument
}

fn summary(info: &WorkflowExecutionInfo, public_url: &str) -> Option<JobSummary> {
    let job_id = info.execution.as_ref()?.workflow_id.clone();
    let keyword = |name: &str| -> Option<String> {
        let payload = info.search_attributes.as_ref()?.indexed_fields.get(name)?;
        serde_json::from_slice(&payload.data).ok()
    };
    let status = match ProtoStatus::try_from(info.status).unwrap_or(ProtoStatus::Running) {
        ProtoStatus::Completed => JobStatus::Completed,
        ProtoStatus::Failed => JobStatus::Failed,
        ProtoStatus::Canceled => JobStatus::Cancelled,
        ProtoStatus::Terminated => JobStatus::Terminated,
        ProtoStatus::TimedOut => JobStatus::TimedOut,
        _ => JobStatus::Running.with_awaiting(keyword(search::AWAITING.name()).as_deref()),
    };
    let time = |t: Option<(i64, i32)>| {
        let (secs, nanos) = t?;
        let at = SystemTime::UNIX_EPOCH
            + Duration::new(u64::try_from(secs).ok()?, u32::try_from(nanos).ok()?);
        Some(rfc3339(at))
    };
    Some(JobSummary {
        tool: keyword(search::TOOL.name()).unwrap_or_default(),
        owner: keyword(search::OWNER.name()),
        status,
        created_at: time(info.start_time.as_ref().map(|t| (t.seconds, t.nanos))),
        closed_at: time(info.close_time.as_ref().map(|t| (t.seconds, t.nanos))),
        status_url: status_url(public_url, &job_id),
        resource_uri: resource_uri(&job_id),
        job_id,
    })
}

fn encode_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.is_empty() || !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const JOB_TOOLS: [&str; 5] = [
        "generate_speech",
        "durable_echo",
        "smart_home_control",
        "call_service",
        "batch_execute",
    ];

    fn tenant(name: &str) -> JobScope {
        JobScope {
            tenant: name.into(),
            owner: None,
        }
    }

    #[test]
    fn an_agent_scope_and_an_owner_filter_add_owner_clauses() {
        let agent = JobScope {
            tenant: "t1".into(),
            owner: Some("key_1".into()),
        };
        assert_eq!(
            visibility_query(&agent, &JobFilter::default(), &JOB_TOOLS).expect("query"),
            "AvbTenant = 't1' AND AvbOwner = 'key_1'"
        );
        let f = JobFilter {
            owner: Some("jwt:o'hara".into()),
            ..JobFilter::default()
        };
        assert_eq!(
            visibility_query(&tenant("t1"), &f, &JOB_TOOLS).expect("query"),
            r"AvbTenant = 't1' AND AvbOwner = 'jwt:o\'hara'"
        );
        let bad = JobFilter {
            owner: Some("a\nb".into()),
            ..JobFilter::default()
        };
        assert!(matches!(
            visibility_query(&tenant("t1"), &bad, &JOB_TOOLS),
            Err(ListError::InvalidFilter { field: "owner", .. })
        ));
    }

    #[test]
    fn query_has_tenant_and_checked_filters() {
        let f = JobFilter {
            tool: Some("generate_speech".into()),
            status: Some("cancelled".into()),
            since: Some("2026-11-23T10:00:00Z".into()),
            ..JobFilter::default()
        };
        assert_eq!(
            visibility_query(&tenant("t1"), &f, &JOB_TOOLS).expect("query"),
            "AvbTenant = 't1' AND AvbTool = 'generate_speech' AND ExecutionStatus = 'Canceled' \
             AND StartTime >= '2026-11-23T10:00:00Z'"
        );
    }

    #[test]
    fn bad_filters_name_the_field() {
        let cases = [
            (
                JobFilter {
                    tool: Some("x' OR 1=1".into()),
                    ..Default::default()
                },
                "tool",
            ),
            (
                JobFilter {
                    status: Some("done".into()),
                    ..Default::default()
                },
                "status",
            ),
            (
                JobFilter {
                    since: Some("yesterday".into()),
                    ..Default::default()
                },
                "since",
            ),
            (
                JobFilter {
                    since: Some("2026-11-23T10:00:00Z".into()),
                    until: Some("2026-11-22T10:00:00Z".into()),
                    ..Default::default()
                },
                "until",
            ),
        ];
        for (f, field) in cases {
            match visibility_query(&tenant("t"), &f, &JOB_TOOLS) {
                Err(ListError::InvalidFilter { field: got, .. }) => assert_eq!(got, field),
                other => panic!("{field}: expected an invalid filter, got {other:?}"),
            }
        }
    }

    #[test]
    fn tenant_is_quoted_and_tokens_roundtrip() {
        let q = visibility_query(&tenant("a'b"), &JobFilter::default(), &JOB_TOOLS).expect("query");
        assert_eq!(q, r"AvbTenant = 'a\'b'");
        let token = vec![0u8, 1, 254, 255];
        assert_eq!(decode_hex(&encode_hex(&token)), Some(token));
        assert_eq!(decode_hex("zz"), None);
        assert_eq!(decode_hex("abc"), None);
    }
}
