//! 16-bit PCM WAV encoding with hound.

use std::io::Cursor;

use super::error::TtsError;

/// Encodes mono float samples (−1..1, clipped) as a 16-bit WAV file in memory.
pub fn encode_wav(samples: &[f32], sample_rate: u32) -> Result<Vec<u8>, TtsError> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut buf = Cursor::new(Vec::with_capacity(44 + samples.len() * 2));
    {
        let err = |e: hound::Error| TtsError::Io(std::io::Error::other(e));
        let mut writer = hound::WavWriter::new(&mut buf, spec).map_err(err)?;
        let mut w16 = writer.get_i16_writer(
            u32::try_from(samples.len())
                .map_err(|_| TtsError::invalid("text", "audio longer than a WAV file can hold"))?,
        );
        for s in samples {
            w16.write_sample(to_i16(*s));
        }
        w16.flush().map_err(err)?;
        writer.finalize().map_err(err)?;
    }
    Ok(buf.into_inner())
}

/// Little-endian 16-bit PCM bytes, the format streamed chunk by chunk.
pub fn to_pcm16le(samples: &[f32]) -> Vec<u8> {
    samples
        .iter()
        .flat_map(|s| to_i16(*s).to_le_bytes())
        .collect()
}

fn to_i16(s: f32) -> i16 {
    // Truncation is the intent: the value is clamped into i16 range first.
    #[allow(clippy::cast_possible_truncation)]
    let v = (s.clamp(-1.0, 1.0) * 32767.0).round() as i16;
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wav_roundtrips_through_hound() {
        let samples = [0.0, 0.5, -0.5, 1.5];
        let bytes = encode_wav(&samples, 24_000).expect("encode");
        let mut r = hound::WavReader::new(Cursor::new(bytes)).expect("read");
        assert_eq!(r.spec().sample_rate, 24_000);
        let back: Vec<i16> = r.samples::<i16>().map(|s| s.expect("sample")).collect();
        assert_eq!(back, vec![0, 16384, -16384, 32767]);
        assert_eq!(to_pcm16le(&[1.0]), vec![0xff, 0x7f]);
    }
}
