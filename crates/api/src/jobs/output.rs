//! Where callers find a job again: its status URL, its resource, its audio.

pub fn resource_uri(job_id: &str) -> String {
    format!("avb://jobs/{job_id}")
}

pub fn status_url(public_url: &str, job_id: &str) -> String {
    format!("{public_url}/api/v2/jobs/{job_id}")
}

pub fn audio_url(public_url: &str, job_id: &str) -> String {
    format!("{public_url}/api/v2/audio/{job_id}")
}
