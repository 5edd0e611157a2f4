//! The audio formats served, by the names the OpenAI speech API uses.

/// A format audio can be delivered in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AudioFormat {
    /// RIFF WAV, 16-bit PCM, mono.
    Wav,
    /// Raw 16-bit little-endian PCM, mono, no header.
    Pcm,
    /// FLAC, 16-bit, mono.
    Flac,
    /// MPEG-1/2 Layer III, 64 kbit/s mono.
    Mp3,
    /// Opus (32 kbit/s, speech tuning) in an Ogg container.
    Opus,
}

/// A format name that is not served, with the names that are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct UnknownFormat {
    pub message: String,
}

impl AudioFormat {
    pub const ALL: [Self; 5] = [Self::Mp3, Self::Opus, Self::Flac, Self::Wav, Self::Pcm];

    /// `wav`, `pcm`, `flac`, `mp3` or `opus` (any case); `aac` and anything else is an error
    /// naming what is served.
    pub fn parse(name: &str) -> Result<Self, UnknownFormat> {
        let wanted = name.trim().to_ascii_lowercase();
        if let Some(f) = Self::ALL.into_iter().find(|f| f.name() == wanted) {
            return Ok(f);
        }
        let served = Self::ALL.map(Self::name).join(", ");
        let message = if wanted == "aac" {
            format!("aac is not served (no AAC encoder is available to us); use one of {served}")
        } else {
            format!("unknown audio format {name:?}; use one of {served}")
        };
        Err(UnknownFormat { message })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Wav => "wav",
            Self::Pcm => "pcm",
            Self::Flac => "flac",
            Self::Mp3 => "mp3",
            Self::Opus => "opus",
        }
    }

    /// The `Content-Type` of the format (PCM names its layout and rate).
    pub fn mime_type(self) -> &'static str {
        match self {
            Self::Wav => "audio/wav",
            Self::Pcm => "audio/pcm",
            Self::Flac => "audio/flac",
            Self::Mp3 => "audio/mpeg",
            Self::Opus => "audio/ogg; codecs=opus",
        }
    }

    /// File extension for downloads.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Opus => "ogg",
            other => other.name(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_unknown_ones_list_what_is_served() {
        for f in AudioFormat::ALL {
            assert_eq!(AudioFormat::parse(f.name()), Ok(f));
            assert_eq!(AudioFormat::parse(&f.name().to_uppercase()), Ok(f));
        }
        let aac = AudioFormat::parse("aac").expect_err("aac");
        assert!(aac.message.contains("aac is not served"), "{aac}");
        let odd = AudioFormat::parse("ogg-vorbis").expect_err("unknown");
        assert!(
            odd.message.contains("\"ogg-vorbis\"") && odd.message.contains("mp3, opus"),
            "{odd}"
        );
        assert_eq!(AudioFormat::Opus.extension(), "ogg");
        assert_eq!(AudioFormat::Mp3.mime_type(), "audio/mpeg");
    }
}
