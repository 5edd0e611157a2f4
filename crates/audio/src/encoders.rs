//! One encoder per format. Each takes mono 16-bit samples as they come and returns the bytes
//! ready so far; `finish` returns the rest.

use crate::{AudioError, AudioFormat};

/// MP3 bit rate: plenty for 24 kHz mono speech.
const MP3_BITRATE: mp3lame_encoder::Bitrate = mp3lame_encoder::Bitrate::Kbps64;
/// Opus bit rate for mono speech.
const OPUS_BITRATE: i32 = 32_000;
/// Opus frames of 20 ms.
const OPUS_FRAME_MS: u32 = 20;
/// Ogg stream serial of the one logical stream written.
const OGG_SERIAL: u32 = 0x6176_6221;

/// Encodes one audio stream, incrementally.
pub trait Encoder: Send {
    /// Takes the next samples; returns the bytes that are ready.
    fn push(&mut self, samples: &[i16]) -> Result<Vec<u8>, AudioError>;
    /// Ends the stream; returns the remaining bytes.
    fn finish(self: Box<Self>) -> Result<Vec<u8>, AudioError>;
}

/// An encoder for `format` at `sample_rate` (mono). Streamed WAV leaves its sizes open.
pub fn encoder(format: AudioFormat, sample_rate: u32) -> Result<Box<dyn Encoder>, AudioError> {
    Ok(match format {
        AudioFormat::Pcm => Box::new(Pcm),
        AudioFormat::Wav => Box::new(StreamedWav {
            header: Some(wav_header(sample_rate, None)),
        }),
        AudioFormat::Flac => Box::new(Flac {
            sample_rate,
            samples: Vec::new(),
        }),
        AudioFormat::Mp3 => Box::new(Mp3::new(sample_rate)?),
        AudioFormat::Opus => Box::new(OggOpus::new(sample_rate)?),
    })
}

/// The whole audio in `format` (WAV with exact sizes).
pub fn encode(
    format: AudioFormat,
    samples: &[i16],
    sample_rate: u32,
) -> Result<Vec<u8>, AudioError> {
    if format == AudioFormat::Wav {
        let data = u32::try_from(samples.len() * 2)
            .map_err(|_| AudioError::encoder(format, "audio longer than a WAV file can hold"))?;
        let mut out = wav_header(sample_rate, Some(data));
        out.extend(pcm16le(samples));
        return Ok(out);
    }
    let mut enc = encoder(format, sample_rate)?;
    let mut out = enc.push(samples)?;
    out.extend(enc.finish()?);
    Ok(out)
}

fn pcm16le(samples: &[i16]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}

/// A 44-byte RIFF header for 16-bit mono PCM; `data_len` `None` (streaming) writes the largest
/// sizes, which players read as "until the stream ends".
fn wav_header(sample_rate: u32, data_len: Option<u32>) -> Vec<u8> {
    let data = data_len.unwrap_or(u32::MAX - 36);
    let mut h = Vec::with_capacity(44);
    h.extend(b"RIFF");
    h.extend((data + 36).to_le_bytes());
    h.extend(b"WAVEfmt ");
    h.extend(16u32.to_le_bytes());
    h.extend(1u16.to_le_bytes()); // PCM
    h.extend(1u16.to_le_bytes()); // mono
    h.extend(sample_rate.to_le_bytes());
    h.extend((sample_rate * 2).to_le_bytes()); // bytes per second
    h.extend(2u16.to_le_bytes()); // block align
    h.extend(16u16.to_le_bytes()); // bits per sample
    h.extend(b"data");
    h.extend(data.to_le_bytes());
    h
}

struct Pcm;

impl Encoder for Pcm {
    fn push(&mut self, samples: &[i16]) -> Result<Vec<u8>, AudioError> {
        Ok(pcm16le(samples))
    }
    fn finish(self: Box<Self>) -> Result<Vec<u8>, AudioError> {
        Ok(Vec::new())
    }
}

struct StreamedWav {
    header: Option<Vec<u8>>,
}

impl Encoder for StreamedWav {
    fn push(&mut self, samples: &[i16]) -> Result<Vec<u8>, AudioError> {
        let mut out = self.header.take().unwrap_or_default();
        out.extend(pcm16le(samples));
        Ok(out)
    }
    fn finish(mut self: Box<Self>) -> Result<Vec<u8>, AudioError> {
        Ok(self.header.take().unwrap_or_default())
    }
}

/// FLAC's stream header carries the totals: samples are kept until the end.
struct Flac {
    sample_rate: u32,
    samples: Vec<i32>,
}

impl Encoder for Flac {
    fn push(&mut self, samples: &[i16]) -> Result<Vec<u8>, AudioError> {
        self.samples.extend(samples.iter().map(|s| i32::from(*s)));
        Ok(Vec::new())
    }
    fn finish(self: Box<Self>) -> Result<Vec<u8>, AudioError> {
        use flacenc::component::BitRepr;
        use flacenc::error::Verify;
        let fail =
            |e: &dyn std::fmt::Debug| AudioError::encoder(AudioFormat::Flac, format!("{e:?}"));
        let config = flacenc::config::Encoder::default()
            .into_verified()
            .map_err(|e| fail(&e))?;
        let rate = usize::try_from(self.sample_rate).map_err(|e| fail(&e))?;
        let source = flacenc::source::MemSource::from_samples(&self.samples, 1, 16, rate);
        let stream = flacenc::encode_with_fixed_block_size(&config, source, config.block_size)
            .map_err(|e| fail(&e))?;
        let mut sink = flacenc::bitsink::ByteSink::new();
        stream.write(&mut sink).map_err(|e| fail(&e))?;
        Ok(sink.into_inner())
    }
}

struct Mp3 {
    lame: mp3lame_encoder::Encoder,
}

impl Mp3 {
    fn new(sample_rate: u32) -> Result<Self, AudioError> {
        let fail =
            |e: &dyn std::fmt::Debug| AudioError::encoder(AudioFormat::Mp3, format!("{e:?}"));
        let mut b = mp3lame_encoder::Builder::new()
            .ok_or_else(|| AudioError::encoder(AudioFormat::Mp3, "LAME could not start"))?;
        b.set_num_channels(1).map_err(|e| fail(&e))?;
        b.set_sample_rate(sample_rate).map_err(|e| fail(&e))?;
        b.set_mode(mp3lame_encoder::Mode::Mono)
            .map_err(|e| fail(&e))?;
        b.set_brate(MP3_BITRATE).map_err(|e| fail(&e))?;
        b.set_quality(mp3lame_encoder::Quality::Good)
            .map_err(|e| fail(&e))?;
        Ok(Self {
            lame: b.build().map_err(|e| fail(&e))?,
        })
    }
}

impl Encoder for Mp3 {
    fn push(&mut self, samples: &[i16]) -> Result<Vec<u8>, AudioError> {
        // LAME's worst case: 1.25 x samples + 7200 bytes.
        let mut out = Vec::with_capacity(samples.len() * 5 / 4 + 7200);
        self.lame
            .encode_to_vec(mp3lame_encoder::MonoPcm(samples), &mut out)
            .map_err(|e| AudioError::encoder(AudioFormat::Mp3, format!("{e:?}")))?;
        Ok(out)
    }
    fn finish(mut self: Box<Self>) -> Result<Vec<u8>, AudioError> {
        let mut out = Vec::with_capacity(7200);
        self.lame
            .flush_to_vec::<mp3lame_encoder::FlushNoGap>(&mut out)
            .map_err(|e| AudioError::encoder(AudioFormat::Mp3, format!("{e:?}")))?;
        Ok(out)
    }
}

/// Opus in Ogg (RFC 7845): an `OpusHead` page, an `OpusTags` page, then 20 ms packets, one page
/// per push. Granule positions count 48 kHz samples from the start, pre-skip included.
struct OggOpus {
    opus: opus::Encoder,
    ogg: ogg::PacketWriter<'static, Vec<u8>>,
    frame: usize,
    /// Samples waiting for a whole frame.
    pending: Vec<i16>,
    /// 48 kHz samples per input sample.
    scale: u64,
    pre_skip: u64,
    /// Input samples pushed so far.
    pushed: u64,
    /// Packets written (each `frame` input samples).
    packets: u64,
}

impl OggOpus {
    fn new(sample_rate: u32) -> Result<Self, AudioError> {
        let fail = |e: &dyn std::fmt::Display| AudioError::encoder(AudioFormat::Opus, e);
        if ![8_000, 12_000, 16_000, 24_000, 48_000].contains(&sample_rate) {
            return Err(AudioError::encoder(
                AudioFormat::Opus,
                format!("{sample_rate} Hz is not an Opus input rate"),
            ));
        }
        let mut opus =
            opus::Encoder::new(sample_rate, opus::Channels::Mono, opus::Application::Voip)
                .map_err(|e| fail(&e))?;
        opus.set_bitrate(opus::Bitrate::Bits(OPUS_BITRATE))
            .map_err(|e| fail(&e))?;
        let scale = u64::from(48_000 / sample_rate);
        let lookahead = u64::try_from(opus.get_lookahead().map_err(|e| fail(&e))?).unwrap_or(0);
        let pre_skip = lookahead * scale;
        let mut head = Vec::with_capacity(19);
        head.extend(b"OpusHead");
        head.push(1); // version
        head.push(1); // channels
        head.extend(u16::try_from(pre_skip).unwrap_or(u16::MAX).to_le_bytes());
        head.extend(sample_rate.to_le_bytes());
        head.extend(0i16.to_le_bytes()); // output gain
        head.push(0); // mapping family: mono/stereo
        let vendor = b"AgentVoiceBox (libopus)";
        let mut tags = Vec::new();
        tags.extend(b"OpusTags");
        tags.extend(u32::try_from(vendor.len()).unwrap_or(0).to_le_bytes());
        tags.extend(vendor);
        tags.extend(0u32.to_le_bytes()); // no user comments
        let mut ogg = ogg::PacketWriter::new(Vec::new());
        let end_page = ogg::PacketWriteEndInfo::EndPage;
        ogg.write_packet(head, OGG_SERIAL, end_page, 0)
            .map_err(|e| fail(&e))?;
        ogg.write_packet(tags, OGG_SERIAL, ogg::PacketWriteEndInfo::EndPage, 0)
            .map_err(|e| fail(&e))?;
        let frame = usize::try_from(sample_rate / 1000 * OPUS_FRAME_MS).unwrap_or(480);
        Ok(Self {
            opus,
            ogg,
            frame,
            pending: Vec::new(),
            scale,
            pre_skip,
            pushed: 0,
            packets: 0,
        })
    }

    /// Encodes whole frames of `pending` (the last one padded with silence when `last`), the
    /// final packet ending the stream.
    fn drain(&mut self, last: bool) -> Result<Vec<u8>, AudioError> {
        let fail = |e: &dyn std::fmt::Display| AudioError::encoder(AudioFormat::Opus, e);
        if last {
            let rest = self.pending.len() % self.frame;
            if rest != 0 || self.pending.is_empty() {
                let pad = self.frame - rest;
                self.pending.extend(std::iter::repeat_n(0, pad));
            }
        }
        let frames = self.pending.len() / self.frame;
        let mut packet = vec![0u8; 4000];
        for i in 0..frames {
            let samples = &self.pending[i * self.frame..(i + 1) * self.frame];
            let n = self
                .opus
                .encode(samples, &mut packet)
                .map_err(|e| fail(&e))?;
            self.packets += 1;
            let is_last = last && i + 1 == frames;
            let frame = u64::try_from(self.frame).unwrap_or(0);
            let granule = if is_last {
                // The true end: the padding of the last frame is not played.
                self.pre_skip + self.pushed * self.scale
            } else {
                self.pre_skip + self.packets * frame * self.scale
            };
            let end = if is_last {
                ogg::PacketWriteEndInfo::EndStream
            } else if i + 1 == frames {
                ogg::PacketWriteEndInfo::EndPage
            } else {
                ogg::PacketWriteEndInfo::NormalPacket
            };
            self.ogg
                .write_packet(packet[..n].to_vec(), OGG_SERIAL, end, granule)
                .map_err(|e| fail(&e))?;
        }
        self.pending.drain(..frames * self.frame);
        Ok(std::mem::take(self.ogg.inner_mut()))
    }
}

impl Encoder for OggOpus {
    fn push(&mut self, samples: &[i16]) -> Result<Vec<u8>, AudioError> {
        self.pushed += samples.len() as u64;
        self.pending.extend_from_slice(samples);
        self.drain(false)
    }
    fn finish(mut self: Box<Self>) -> Result<Vec<u8>, AudioError> {
        self.drain(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One second of a 440 Hz tone at 24 kHz.
    fn tone() -> Vec<i16> {
        (0..24_000)
            .map(|i| {
                let t = f64::from(i) / 24_000.0;
                #[allow(clippy::cast_possible_truncation)]
                let v = ((t * 440.0 * std::f64::consts::TAU).sin() * 8_000.0) as i16;
                v
            })
            .collect()
    }

    #[test]
    fn each_format_starts_with_its_signature() {
        let samples = tone();
        let sig = |f: AudioFormat| encode(f, &samples, 24_000).expect("encode");
        let wav = sig(AudioFormat::Wav);
        assert_eq!(&wav[..4], b"RIFF");
        assert_eq!(wav.len(), 44 + 48_000);
        let (back, rate) = crate::read_wav(&wav).expect("our WAV reads back");
        assert_eq!((back, rate), (samples.clone(), 24_000));
        assert_eq!(sig(AudioFormat::Pcm).len(), 48_000);
        assert_eq!(&sig(AudioFormat::Flac)[..4], b"fLaC");
        let mp3 = sig(AudioFormat::Mp3);
        // An MPEG audio frame sync (no ID3 tag is written).
        assert!(mp3[0] == 0xff && mp3[1] & 0xe0 == 0xe0, "{:x?}", &mp3[..4]);
        assert!(
            mp3.len() < 48_000 / 4,
            "64 kbit/s is far below PCM: {}",
            mp3.len()
        );
        let opus = sig(AudioFormat::Opus);
        assert_eq!(&opus[..4], b"OggS");
        assert!(opus.windows(8).any(|w| w == b"OpusHead"));
        assert!(opus.windows(8).any(|w| w == b"OpusTags"));
    }

    #[test]
    fn streamed_encoders_give_bytes_before_the_end_except_flac() {
        let samples = tone();
        for f in AudioFormat::ALL {
            let mut enc = encoder(f, 24_000).expect("encoder");
            let first = enc.push(&samples[..12_000]).expect("push");
            let second = enc.push(&samples[12_000..]).expect("push");
            let rest = enc.finish().expect("finish");
            match f {
                AudioFormat::Flac => assert!(first.is_empty() && !rest.is_empty()),
                _ => assert!(!first.is_empty() && !second.is_empty(), "{f:?}"),
            }
        }
    }
}
