//! `[mcp_servers.<name>]`: upstream MCP servers AgentVoiceBox mounts beside its own tools. A server
//! is either a local program spoken to over stdio (`command`, `args`, `env`) or a remote endpoint
//! (`server_url`, `authorization`) speaking Streamable HTTP or, with `transport = "sse"`, the
//! legacy HTTP+SSE transport. Values may name environment variables as `${VAR}`; they are expanded
//! when the config is loaded, and a missing variable refuses the start naming the key.
//! Authorization and environment values are never printed.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::Secret;
use super::devices::ApprovalRule;
use super::tenants::ServedTenants;

/// `mode`: `client` (we start the program) or `native` (a remote server).
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamMode {
    Client,
    Native,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamTransport {
    Stdio,
    StreamableHttp,
    /// The legacy HTTP+SSE transport (protocol 2024-11-05): GET an event stream, POST messages.
    Sse,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct UpstreamServer {
    pub enabled: bool,
    /// The tenants whose keys see and call this server's tools (default: `local` only). Its
    /// sessions are shared by them: an upstream that keeps per-user state belongs to one tenant.
    pub tenants: ServedTenants,
    /// Lower wins when two servers offer a tool under the same name (default 100).
    pub priority: i64,
    /// Tools of this server that are offered (by their upstream name); unset: all.
    pub allowed_tools: Option<Vec<String>>,
    pub require_approval: ApprovalRule,
    pub description: Option<String>,
    /// Prefix of the mounted tools (`<namespace>_<tool>`); default: the server's name. Two
    /// servers may share one, e.g. a remote instance with a local fallback: `priority` decides.
    pub namespace: Option<String>,
    /// Optional, checked against the other keys when given.
    pub mode: Option<UpstreamMode>,
    pub transport: Option<UpstreamTransport>,
    /// stdio: the program and its arguments; `env` is added to the program's environment (its
    /// values are often secrets: only their names are printed).
    pub command: Option<String>,
    pub args: Vec<String>,
    pub env: BTreeMap<String, Secret<String>>,
    /// remote: the Streamable HTTP endpoint and the `Authorization` header value.
    pub server_url: Option<String>,
    pub authorization: Option<Secret<String>>,
    /// Seconds one tool call may take upstream before it counts as failed.
    pub timeout: u64,
    /// Tools retried after a failure although they do not declare themselves read-only or
    /// idempotent (by default only those are retried: a retry could do the work twice).
    pub retry_tools: Vec<String>,
    /// Believe the server's read-only / idempotent tool hints when deciding whether to retry
    /// (MCP calls them untrusted unless the server is): `false` retries only `retry_tools`.
    pub trust_hints: bool,
    /// Credits one call of any of this server's tools costs (0: free). Charged through the
    /// ledger like every job, on the durable path only.
    pub credits_per_call: i64,
    /// Calls run as durable jobs (a workflow on `avb-upstream`, retried, visible in Temporal).
    /// `false`: the fast path, the api calls the upstream itself (no job, no retry).
    pub durable: bool,
    /// Sessions kept open with this server (1-16): calls go to the least busy one. A stdio
    /// server gets one child process per session, so a server that handles one request at a time
    /// can run `pool_size` calls at once.
    pub pool_size: usize,
}

/// The most sessions one upstream may have.
pub const MAX_POOL_SIZE: usize = 16;

impl Default for UpstreamServer {
    fn default() -> Self {
        Self {
            enabled: true,
            tenants: ServedTenants::default(),
            priority: 100,
            allowed_tools: None,
            require_approval: ApprovalRule::default(),
            description: None,
            namespace: None,
            mode: None,
            transport: None,
            command: None,
            args: Vec::new(),
            env: BTreeMap::new(),
            server_url: None,
            authorization: None,
            timeout: 30,
            retry_tools: Vec::new(),
            durable: true,
            trust_hints: true,
            credits_per_call: 0,
            pool_size: 1,
        }
    }
}

impl UpstreamServer {
    pub fn transport(&self) -> UpstreamTransport {
        if self.command.is_some() {
            UpstreamTransport::Stdio
        } else if self.transport == Some(UpstreamTransport::Sse) {
            UpstreamTransport::Sse
        } else {
            UpstreamTransport::StreamableHttp
        }
    }

    /// Whether `other` reaches the same server the same way: sessions opened with one serve the
    /// other (a change of policy — priority, filters, approval, price — keeps them open).
    pub fn same_connection(&self, other: &Self) -> bool {
        self.command == other.command
            && self.args == other.args
            && self.env == other.env
            && self.server_url == other.server_url
            && self.authorization == other.authorization
            && self.transport() == other.transport()
            && self.pool_size == other.pool_size
    }

    /// The prefix of this server's mounted tools.
    pub fn namespace<'a>(&'a self, name: &'a str) -> &'a str {
        self.namespace.as_deref().unwrap_or(name)
    }

    pub fn offers(&self, tool: &str) -> bool {
        self.allowed_tools
            .as_ref()
            .is_none_or(|tools| tools.iter().any(|t| t == tool))
    }
}

/// Server names and namespaces: what a tool name can start with.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 40
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// `(key, message)` of the first bad server setting.
pub fn validate(servers: &BTreeMap<String, UpstreamServer>) -> Result<(), (String, String)> {
    for (name, s) in servers {
        let key = |k: &str| format!("mcp_servers.{name}.{k}");
        if !valid_name(name) {
            return Err((
                format!("mcp_servers.{name}"),
                "a server name is 1-40 characters: a lowercase letter, then lowercase letters, \
                 digits, _ or -"
                    .into(),
            ));
        }
        s.tenants.check().map_err(|m| (key("tenants"), m))?;
        if let Some(ns) = &s.namespace
            && !valid_name(ns)
        {
            return Err((
                key("namespace"),
                format!("{ns:?}: a lowercase letter, then lowercase letters, digits, _ or -"),
            ));
        }
        match (&s.command, &s.server_url) {
            (Some(_), Some(_)) => {
                return Err((
                    key("server_url"),
                    "set either command (a local stdio server) or server_url (a remote one), \
                     not both"
                        .into(),
                ));
            }
            (None, None) => {
                return Err((
                    format!("mcp_servers.{name}"),
                    "set command (a local stdio server) or server_url (a remote Streamable HTTP \
                     or SSE server)"
                        .into(),
                ));
            }
            (Some(cmd), None) if cmd.trim().is_empty() => {
                return Err((key("command"), "must not be empty".into()));
            }
            (None, Some(url)) if !(url.starts_with("http://") || url.starts_with("https://")) => {
                return Err((
                    key("server_url"),
                    format!("{url:?}: use http:// or https://"),
                ));
            }
            _ => {}
        }
        let stdio = s.command.is_some();
        if let Some(mode) = s.mode
            && (mode == UpstreamMode::Client) != stdio
        {
            let expected = if stdio { "client" } else { "native" };
            return Err((
                key("mode"),
                format!("{mode:?} does not match the server's keys: it is {expected}")
                    .to_lowercase(),
            ));
        }
        if let Some(t) = s.transport
            && t != s.transport()
        {
            return Err((
                key("transport"),
                if stdio {
                    "a server with a command speaks stdio".into()
                } else {
                    "a server with a server_url speaks streamable_http or sse".into()
                },
            ));
        }
        if !stdio && (!s.args.is_empty() || !s.env.is_empty()) {
            return Err((
                key(if s.args.is_empty() { "env" } else { "args" }),
                "only for local servers (command); a remote server has server_url and \
                 authorization"
                    .into(),
            ));
        }
        if stdio && s.authorization.is_some() {
            return Err((
                key("authorization"),
                "only for remote servers (server_url); pass secrets to a local one in env".into(),
            ));
        }
        if s.credits_per_call < 0 {
            return Err((key("credits_per_call"), "must not be negative".into()));
        }
        if s.credits_per_call > 0 && !s.durable {
            return Err((
                key("credits_per_call"),
                "priced calls are charged through their job: set durable = true".into(),
            ));
        }
        if s.timeout == 0 {
            return Err((key("timeout"), "must be at least 1 (seconds)".into()));
        }
        if !(1..=MAX_POOL_SIZE).contains(&s.pool_size) {
            return Err((
                key("pool_size"),
                format!("{}: must be 1 to {MAX_POOL_SIZE} (sessions)", s.pool_size),
            ));
        }
    }
    Ok(())
}

/// Replaces every `${VAR}` in the servers' strings with the variable's value.
pub fn expand_env(
    servers: &mut BTreeMap<String, UpstreamServer>,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(), (String, String)> {
    for (name, s) in servers.iter_mut() {
        let key = |k: &str| format!("mcp_servers.{name}.{k}");
        let one = |k: String, v: &mut String| expand(v, lookup).map_err(|m| (k, m));
        if let Some(v) = s.command.as_mut() {
            one(key("command"), v)?;
        }
        for (i, v) in s.args.iter_mut().enumerate() {
            one(key(&format!("args[{i}]")), v)?;
        }
        for (k, v) in s.env.iter_mut() {
            one(key(&format!("env.{k}")), v.expose_mut())?;
        }
        if let Some(v) = s.server_url.as_mut() {
            one(key("server_url"), v)?;
        }
        if let Some(v) = s.authorization.as_mut() {
            one(key("authorization"), v.expose_mut())?;
        }
    }
    Ok(())
}

fn expand(value: &mut String, lookup: &dyn Fn(&str) -> Option<String>) -> Result<(), String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value.as_str();
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| "an unclosed ${ (write ${VAR})".to_string())?;
        let var = &after[..end];
        if var.is_empty() || !var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("${{{var}}} is not a variable name"));
        }
        let v = lookup(var)
            .ok_or_else(|| format!("names the environment variable {var}, which is not set"))?;
        out.push_str(&v);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    *value = out;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> BTreeMap<String, UpstreamServer> {
        toml::from_str(text).expect("toml")
    }

    #[test]
    fn servers_with_modes_and_priorities_parse_and_validate() {
        let servers = parse(
            "[filesystem]\nmode = \"client\"\ntransport = \"stdio\"\ncommand = \"npx\"\n\
             args = [\"-y\", \"server-filesystem\", \"/tmp\"]\nenv = { MCP_DEBUG = \"1\" }\n\
             timeout = 30\npriority = 200\n\
             [home_assistant]\nmode = \"native\"\nserver_url = \"https://ha.local/mcp\"\n\
             authorization = \"Bearer t\"\nrequire_approval = \"never\"\n\
             allowed_tools = [\"get_state\"]\n",
        );
        assert_eq!(validate(&servers), Ok(()));
        let ha = &servers["home_assistant"];
        assert_eq!(ha.transport(), UpstreamTransport::StreamableHttp);
        assert!(ha.offers("get_state") && !ha.offers("call_service"));
        assert_eq!(servers["filesystem"].priority, 200);
        let legacy =
            parse("[old]\nserver_url = \"http://h/sse\"\ntransport = \"sse\"\npool_size = 4\n");
        assert_eq!(validate(&legacy), Ok(()));
        assert_eq!(legacy["old"].transport(), UpstreamTransport::Sse);
        assert_eq!(legacy["old"].pool_size, 4);
        let shown = format!("{servers:?}");
        assert!(!shown.contains("Bearer t"), "{shown}");
    }

    #[test]
    fn bad_servers_name_the_key() {
        let cases = [
            ("[Bad]\ncommand = \"x\"\n", "mcp_servers.Bad"),
            ("[a]\n", "mcp_servers.a"),
            (
                "[a]\ncommand = \"x\"\nserver_url = \"http://h\"\n",
                "mcp_servers.a.server_url",
            ),
            (
                "[a]\nserver_url = \"ftp://h\"\n",
                "mcp_servers.a.server_url",
            ),
            (
                "[a]\ncommand = \"x\"\nmode = \"native\"\n",
                "mcp_servers.a.mode",
            ),
            (
                "[a]\nserver_url = \"http://h\"\nargs = [\"x\"]\n",
                "mcp_servers.a.args",
            ),
            (
                "[a]\ncommand = \"x\"\ntimeout = 0\n",
                "mcp_servers.a.timeout",
            ),
            (
                "[a]\ncommand = \"x\"\nnamespace = \"A B\"\n",
                "mcp_servers.a.namespace",
            ),
            (
                "[a]\ncommand = \"x\"\ntransport = \"sse\"\n",
                "mcp_servers.a.transport",
            ),
            (
                "[a]\ncommand = \"x\"\npool_size = 0\n",
                "mcp_servers.a.pool_size",
            ),
            (
                "[a]\nserver_url = \"http://h\"\npool_size = 17\n",
                "mcp_servers.a.pool_size",
            ),
        ];
        for (text, key) in cases {
            let (k, msg) = validate(&parse(text)).expect_err(text);
            assert_eq!(k, key, "{text}: {msg}");
        }
    }

    #[test]
    fn variables_are_expanded_and_a_missing_one_names_the_key() {
        let mut servers = parse(
            "[remote]\nserver_url = \"http://h:${PORT}/mcp\"\n\
             authorization = \"Bearer ${TOKEN}\"\n",
        );
        let env = |v: &str| match v {
            "PORT" => Some("8080".to_string()),
            "TOKEN" => Some("s3cret".to_string()),
            _ => None,
        };
        expand_env(&mut servers, &env).expect("expanded");
        assert_eq!(
            servers["remote"].server_url.as_deref(),
            Some("http://h:8080/mcp")
        );
        assert_eq!(
            servers["remote"]
                .authorization
                .as_ref()
                .map(|a| a.expose().as_str()),
            Some("Bearer s3cret")
        );
        let mut servers = parse("[local]\ncommand = \"x\"\nenv = { KEY = \"${NOPE}\" }\n");
        let (key, msg) = expand_env(&mut servers, &env).expect_err("missing");
        assert_eq!(key, "mcp_servers.local.env.KEY");
        assert!(msg.contains("NOPE"), "{msg}");
    }
}
