//! Custom search attributes set on every job, so the Temporal UI and list queries filter by them.

use temporalio_common::search_attributes::SearchAttributeKey;

/// The MCP tool that started the job, e.g. `generate_speech`.
pub const TOOL: SearchAttributeKey<String> = SearchAttributeKey::keyword("AvbTool");
/// The tenant that owns the job.
pub const TENANT: SearchAttributeKey<String> = SearchAttributeKey::keyword("AvbTenant");

/// Who started the job: the API key's id, or `jwt:<subject>` for a token of the OpenID
/// provider. AGENT callers see only their own jobs; jobs started before owners were recorded
/// have none and are seen by HUMAN callers only.
pub const OWNER: SearchAttributeKey<String> = SearchAttributeKey::keyword("AvbOwner");
/// Memo key of the owner's label (the API key's label), shown in job views.
pub const OWNER_LABEL_MEMO: &str = "owner_label";

/// What a running job waits for, when it waits for a person: `approval`.
pub const AWAITING: SearchAttributeKey<String> = SearchAttributeKey::keyword("AvbAwaiting");
/// `AvbAwaiting` of a job that no longer waits for anyone.
pub const AWAITING_NOTHING: &str = "none";

/// (name, type) of every custom attribute, for registration at start.
pub const ALL_KEYWORDS: &[&str] = &["AvbTool", "AvbTenant", "AvbAwaiting", "AvbOwner"];
