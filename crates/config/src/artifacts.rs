//! `[artifacts]`: where audio and other large results are kept, chosen by URL.
//!
//! - `file:///ABSOLUTE/PATH`: a directory on this host (default `$AVB_DATA_DIR/artifacts` when
//!   the database is SQLite). Only processes on this host can read what is written.
//! - `database`: chunked in the installation's database (default when the database is
//!   PostgreSQL, so hosts sharing a database share artifacts with nothing else to deploy).
//! - `s3://BUCKET[/PREFIX]`: S3-compatible object storage. Endpoint, region and credentials come
//!   from the standard `AWS_*` variables (`AWS_ENDPOINT_URL`, `AWS_REGION`,
//!   `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`; `AWS_ALLOW_HTTP=true`
//!   for a plain-http endpoint) and are never printed.

use std::path::PathBuf;

use serde::Deserialize;

use super::env::{EnvVar, non_empty};

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ArtifactSettings {
    /// `AVB_ARTIFACTS_URL`: `file:///PATH`, `database` or `s3://BUCKET[/PREFIX]`. Unset: the
    /// database when it is PostgreSQL, else `$AVB_DATA_DIR/artifacts`.
    pub url: Option<String>,
}

pub const ENV: &[EnvVar<ArtifactSettings>] = &[EnvVar::new(
    "AVB_ARTIFACTS_URL",
    "where audio is kept: file:///PATH, database or s3://BUCKET[/PREFIX] (credentials from \
     AWS_*); default the database when it is PostgreSQL, else $AVB_DATA_DIR/artifacts",
    |a, v| {
        a.url = non_empty(v);
        Ok(())
    },
)];

/// Where artifacts are kept, resolved from `artifacts.url` and the database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArtifactLocation {
    /// A directory on this host.
    Directory(PathBuf),
    /// Chunks in the installation's database.
    Database,
    /// S3-compatible object storage: a bucket and a key prefix (may be empty).
    S3 { bucket: String, prefix: String },
}

impl std::fmt::Display for ArtifactLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ArtifactLocation::Directory(dir) => write!(f, "file://{}", dir.display()),
            ArtifactLocation::Database => f.write_str("database"),
            ArtifactLocation::S3 { bucket, prefix } if prefix.is_empty() => {
                write!(f, "s3://{bucket}")
            }
            ArtifactLocation::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

const FORMS: &str = "file:///ABSOLUTE/PATH, database or s3://BUCKET[/PREFIX]";

impl ArtifactSettings {
    /// The configured location, or None when unset (the caller picks the default).
    pub fn location(&self) -> Result<Option<ArtifactLocation>, (&'static str, String)> {
        let Some(url) = self.url.as_deref() else {
            return Ok(None);
        };
        let bad = |why: &str| Err(("artifacts.url", format!("{url:?}: {why}; use {FORMS}")));
        if url == "database" || url == "database:" {
            return Ok(Some(ArtifactLocation::Database));
        }
        if let Some(path) = url.strip_prefix("file://") {
            if !path.starts_with('/') {
                return bad("a file URL needs an absolute path (file:///var/lib/avb/artifacts)");
            }
            return Ok(Some(ArtifactLocation::Directory(PathBuf::from(path))));
        }
        if url.contains('@') || url.contains('?') {
            // Never echo it: what precedes '@' may be a secret.
            return Err((
                "artifacts.url",
                format!(
                    "credentials and options come from the AWS_* variables, not the URL; use \
                     {FORMS}"
                ),
            ));
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let bucket_ok = (3..=63).contains(&bucket.len())
                && bucket
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
            if !bucket_ok {
                return bad("the bucket name must be 3-63 lowercase letters, digits, '-' or '.'");
            }
            let prefix = prefix.trim_matches('/').to_string();
            return Ok(Some(ArtifactLocation::S3 {
                bucket: bucket.into(),
                prefix,
            }));
        }
        bad("unknown kind of artifact store")
    }

    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        self.location().map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(url: &str) -> Result<Option<ArtifactLocation>, String> {
        ArtifactSettings {
            url: Some(url.into()),
        }
        .location()
        .map_err(|(_, m)| m)
    }

    #[test]
    fn artifact_urls_are_parsed_and_bad_ones_named() {
        assert_eq!(at("database"), Ok(Some(ArtifactLocation::Database)));
        assert_eq!(
            at("file:///srv/avb"),
            Ok(Some(ArtifactLocation::Directory("/srv/avb".into())))
        );
        assert_eq!(
            at("s3://avb-audio/prod/eu/"),
            Ok(Some(ArtifactLocation::S3 {
                bucket: "avb-audio".into(),
                prefix: "prod/eu".into()
            }))
        );
        assert_eq!(
            at("s3://avb-audio").map(|l| l.map(|l| l.to_string())),
            Ok(Some("s3://avb-audio".into()))
        );
        for (url, why) in [
            ("file://relative/dir", "absolute path"),
            ("s3://AB", "bucket name"),
            ("s3://key:secret@bucket", "AWS_*"),
            ("gs://bucket", "unknown kind"),
        ] {
            let message = at(url).expect_err(url);
            assert!(message.contains(why), "{url}: {message}");
            assert!(!message.contains("secret"), "{message}");
            assert!(message.contains(FORMS), "{message}");
        }
        assert_eq!(ArtifactSettings::default().location(), Ok(None));
    }
}
