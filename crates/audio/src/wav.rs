//! Reading the 16-bit mono WAV files the speech worker stores.

use std::io::Cursor;

use crate::AudioError;

/// The samples and sample rate of a 16-bit mono WAV file.
pub fn read_wav(bytes: &[u8]) -> Result<(Vec<i16>, u32), AudioError> {
    let bad = |e: hound::Error| AudioError::NotWav(e.to_string());
    let mut reader = hound::WavReader::new(Cursor::new(bytes)).map_err(bad)?;
    let spec = reader.spec();
    if spec.channels != 1
        || spec.bits_per_sample != 16
        || spec.sample_format != hound::SampleFormat::Int
    {
        return Err(AudioError::NotWav(format!(
            "{} channels, {} bits ({:?})",
            spec.channels, spec.bits_per_sample, spec.sample_format
        )));
    }
    let samples = reader
        .samples::<i16>()
        .collect::<Result<Vec<_>, _>>()
        .map_err(bad)?;
    Ok((samples, spec.sample_rate))
}
