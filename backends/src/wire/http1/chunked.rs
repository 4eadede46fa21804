//! Incremental decoder for `Transfer-Encoding: chunked` bodies (RFC 9112 §7.1).
//!
//! The decoder consumes every framing byte it is given and keeps its own
//! state, so the caller never has to retain partial chunk-size lines or
//! trailers: it only forwards the data ranges it is handed and drops the
//! rest. Data is returned as ranges into the caller's input (zero copy).
//!
//! Strictness, because a chunked body that two parsers split differently
//! is a smuggling vector:
//! * chunk-size is 1+ hex digits, ended by CRLF or by chunk extensions;
//! * chunk extensions are validated against RFC 9112 §7.1.1 and discarded:
//!   `*( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] )`.
//!   Whitespace is allowed only where the grammar has BWS (before `;`,
//!   around `=`, after `;`), never before CRLF (`5 \r\n`, `5;a \r\n`).
//!   An empty name (`5;`, `5;=x`), a non-token name, a missing value
//!   (`5;a=`) or an unbalanced quote (`5;a="x`) is rejected: parsers that
//!   skip extensions leniently disagree on where such a line ends. The
//!   bytes after the size are bounded by [`MAX_EXTENSION_BYTES`];
//! * every line ends with exactly CRLF, and chunk data must be followed by
//!   exactly CRLF (otherwise the data was longer than the declared size);
//! * trailer fields are validated like header lines (`token ":" value`,
//!   no obs-fold) and discarded; at most [`MAX_TRAILER_BYTES`] in total.
//!
//! Errors are sticky in effect: the state is not advanced past a bad byte,
//! so calling again with the same input reports the same error.

use std::ops::Range;

use super::is_tchar;

/// Bound on the chunk-size line after the digits (`;name=value...`).
pub const MAX_EXTENSION_BYTES: usize = 1024;
/// Bound on the whole trailer section, including the final CRLF.
pub const MAX_TRAILER_BYTES: usize = 8 * 1024;
/// Hex digits accepted in a chunk size, leading zeros included; bounds the
/// work on a line like `000000...`.
const MAX_SIZE_DIGITS: u8 = 32;
/// Default upper bound on a single chunk (1 TiB): far above any real body,
/// low enough that callers can add sizes without overflow worries.
pub const DEFAULT_MAX_CHUNK_SIZE: u64 = 1 << 40;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkError {
    InvalidSize,
    SizeOverflow,
    ChunkTooLarge,
    /// Data longer than its size, or a line not ended by exactly CRLF.
    MissingCrlf,
    ExtensionTooLong,
    /// A chunk extension that does not follow RFC 9112 §7.1.1.
    InvalidExtension,
    TrailersTooLarge,
    InvalidTrailer,
}

impl ChunkError {
    pub fn message(&self) -> &'static str {
        match self {
            ChunkError::InvalidSize => "invalid chunk-size line",
            ChunkError::SizeOverflow => "chunk size has too many digits",
            ChunkError::ChunkTooLarge => "chunk size exceeds the limit",
            ChunkError::MissingCrlf => "chunk data longer than its size, or line not ended by CRLF",
            ChunkError::ExtensionTooLong => "chunk extension too long",
            ChunkError::InvalidExtension => "malformed chunk extension",
            ChunkError::TrailersTooLarge => "chunked trailer section too large",
            ChunkError::InvalidTrailer => "invalid trailer field",
        }
    }
}

/// Result of one [`ChunkedDecoder::decode`] call.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Decoded {
    /// Bytes of the input consumed (framing and data).
    pub consumed: usize,
    /// Body data, as indices into the input, within `0..consumed`.
    pub data: Option<Range<usize>>,
    /// The last chunk, trailers and final CRLF have been consumed.
    pub done: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// In the hex digits of a chunk-size line.
    Size,
    /// Whitespace after the size or an extension: only more of it or `;` may follow.
    ExtBws,
    /// After `;`: optional whitespace, then an extension name.
    ExtNameStart,
    /// In an extension name.
    ExtName,
    /// Whitespace after a name: `=`, `;` or more whitespace may follow.
    ExtNameBws,
    /// After `=`: optional whitespace, then a token or quoted-string value.
    ExtValueStart,
    /// In a token value.
    ExtToken,
    /// Inside a quoted-string value.
    ExtQuoted,
    /// After a backslash in a quoted-string.
    ExtQuotedPair,
    /// After the closing quote of a value.
    ExtQuotedEnd,
    /// Saw CR ending the chunk-size line.
    SizeLf,
    /// In chunk data; `remaining` bytes left.
    Data,
    DataCr,
    DataLf,
    /// At the start of a trailer line or of the final empty line.
    TrailerStart,
    TrailerName,
    TrailerValue,
    TrailerLf,
    /// Saw CR of the final empty line.
    FinalLf,
    Done,
}

#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    size: u64,
    digits: u8,
    ext_len: usize,
    remaining: u64,
    trailer_len: usize,
    max_chunk_size: u64,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedDecoder {
    pub fn new() -> Self {
        Self::with_max_chunk_size(DEFAULT_MAX_CHUNK_SIZE)
    }

    /// Decoder that rejects any single chunk larger than `max` with
    /// [`ChunkError::ChunkTooLarge`].
    pub fn with_max_chunk_size(max: u64) -> Self {
        ChunkedDecoder {
            state: State::Size,
            size: 0,
            digits: 0,
            ext_len: 0,
            remaining: 0,
            trailer_len: 0,
            max_chunk_size: max,
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Consume a prefix of `input`. Returns how many bytes were consumed, at
    /// most one data range (indices into `input`, within `0..consumed`) and
    /// whether the body is complete. Call again with the unconsumed rest;
    /// `consumed == input.len()`, no data and not done means "need more".
    /// After done nothing more is consumed (it belongs to the next message).
    ///
    /// Framing after a data range is consumed in the same call, so `done`
    /// arrives together with the last data when the input holds it all. If
    /// that trailing framing is invalid, the data is still returned and the
    /// error surfaces on the next call.
    pub fn decode(&mut self, input: &[u8]) -> Result<Decoded, ChunkError> {
        let mut pos = 0;
        let mut data = None;
        while pos < input.len() {
            match self.state {
                State::Done => break,
                State::Data => {
                    if data.is_some() {
                        break;
                    }
                    let avail = input.len() - pos;
                    let n = usize::try_from(self.remaining).map_or(avail, |r| r.min(avail));
                    data = Some(pos..pos + n);
                    pos += n;
                    self.remaining -= n as u64;
                    if self.remaining == 0 {
                        self.state = State::DataCr;
                    }
                }
                _ => match self.step(input[pos]) {
                    Ok(()) => pos += 1,
                    Err(_) if data.is_some() => break,
                    Err(e) => return Err(e),
                },
            }
        }
        Ok(Decoded {
            consumed: pos,
            data,
            done: self.state == State::Done,
        })
    }

    /// Advance over one framing byte. On error nothing is modified.
    fn step(&mut self, b: u8) -> Result<(), ChunkError> {
        use ChunkError as E;
        match self.state {
            State::Size => match b {
                b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                    if self.digits >= MAX_SIZE_DIGITS {
                        return Err(E::SizeOverflow);
                    }
                    let d = u64::from((b as char).to_digit(16).unwrap_or(0));
                    self.size = self
                        .size
                        .checked_mul(16)
                        .and_then(|s| s.checked_add(d))
                        .ok_or(E::SizeOverflow)?;
                    self.digits += 1;
                }
                b';' | b'\r' | b' ' | b'\t' => {
                    if self.digits == 0 {
                        return Err(E::InvalidSize);
                    }
                    if self.size > self.max_chunk_size {
                        return Err(E::ChunkTooLarge);
                    }
                    self.ext_step(after_value(b).ok_or(E::InvalidSize)?)?;
                }
                b'\n' => return Err(E::MissingCrlf),
                _ => return Err(E::InvalidSize),
            },
            State::ExtBws
            | State::ExtNameStart
            | State::ExtName
            | State::ExtNameBws
            | State::ExtValueStart
            | State::ExtToken
            | State::ExtQuoted
            | State::ExtQuotedPair
            | State::ExtQuotedEnd => {
                if b == b'\n' {
                    return Err(E::MissingCrlf);
                }
                self.ext_step(extension_step(self.state, b).ok_or(E::InvalidExtension)?)?;
            }
            State::SizeLf => {
                if b != b'\n' {
                    return Err(E::MissingCrlf);
                }
                if self.size == 0 {
                    self.state = State::TrailerStart;
                } else {
                    self.remaining = self.size;
                    self.state = State::Data;
                }
                self.size = 0;
                self.digits = 0;
                self.ext_len = 0;
            }
            State::DataCr => {
                if b != b'\r' {
                    return Err(E::MissingCrlf);
                }
                self.state = State::DataLf;
            }
            State::DataLf => {
                if b != b'\n' {
                    return Err(E::MissingCrlf);
                }
                self.state = State::Size;
            }
            State::TrailerStart
            | State::TrailerName
            | State::TrailerValue
            | State::TrailerLf
            | State::FinalLf => {
                if self.trailer_len >= MAX_TRAILER_BYTES {
                    return Err(E::TrailersTooLarge);
                }
                self.state = self.trailer_step(b)?;
                self.trailer_len += 1;
            }
            // `decode` never steps in these states.
            State::Data | State::Done => {}
        }
        Ok(())
    }

    /// Moves to `next` within the chunk-size line, counting the byte against
    /// [`MAX_EXTENSION_BYTES`] unless it is the CR that ends the line.
    fn ext_step(&mut self, next: State) -> Result<(), ChunkError> {
        if next != State::SizeLf {
            if self.ext_len >= MAX_EXTENSION_BYTES {
                return Err(ChunkError::ExtensionTooLong);
            }
            self.ext_len += 1;
        }
        self.state = next;
        Ok(())
    }

    /// Trailer section: `*( field-line CRLF ) CRLF`, validated and discarded.
    fn trailer_step(&self, b: u8) -> Result<State, ChunkError> {
        use ChunkError as E;
        Ok(match (self.state, b) {
            (State::TrailerStart, b'\r') => State::FinalLf,
            (State::TrailerStart, b) if is_tchar(b) => State::TrailerName,
            (State::TrailerName, b) if is_tchar(b) => State::TrailerName,
            (State::TrailerName, b':') => State::TrailerValue,
            (State::TrailerValue, b'\r') => State::TrailerLf,
            (State::TrailerValue, b'\t' | b' '..=0x7e | 0x80..=0xff) => State::TrailerValue,
            (State::FinalLf, b'\n') => State::Done,
            (State::TrailerLf, b'\n') => State::TrailerStart,
            (_, b'\n') | (State::TrailerLf | State::FinalLf, _) => return Err(E::MissingCrlf),
            // Whitespace at a line start (obs-fold) or before the colon,
            // control characters, empty names: all invalid.
            _ => return Err(E::InvalidTrailer),
        })
    }
}

/// Where a complete item of the chunk-size line (the size, a name, a value) may be followed:
/// `;` starts an extension, whitespace is BWS before one, CR ends the line.
fn after_value(b: u8) -> Option<State> {
    match b {
        b';' => Some(State::ExtNameStart),
        b' ' | b'\t' => Some(State::ExtBws),
        b'\r' => Some(State::SizeLf),
        _ => None,
    }
}

/// One byte of `*( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] )` (RFC 9112
/// §7.1.1, RFC 9110 §5.6.4 for quoted-string); `None` for a byte the grammar does not allow.
fn extension_step(state: State, b: u8) -> Option<State> {
    let ws = b == b' ' || b == b'\t';
    Some(match state {
        State::ExtBws if ws => State::ExtBws,
        State::ExtBws if b == b';' => State::ExtNameStart,
        State::ExtNameStart if ws => State::ExtNameStart,
        State::ExtNameStart | State::ExtName if is_tchar(b) => State::ExtName,
        State::ExtName | State::ExtNameBws if b == b'=' => State::ExtValueStart,
        State::ExtName | State::ExtNameBws if ws => State::ExtNameBws,
        State::ExtName => after_value(b)?,
        State::ExtNameBws if b == b';' => State::ExtNameStart,
        State::ExtValueStart if ws => State::ExtValueStart,
        State::ExtValueStart | State::ExtToken if is_tchar(b) => State::ExtToken,
        State::ExtValueStart if b == b'"' => State::ExtQuoted,
        State::ExtToken | State::ExtQuotedEnd => after_value(b)?,
        State::ExtQuoted if b == b'"' => State::ExtQuotedEnd,
        State::ExtQuoted if b == b'\\' => State::ExtQuotedPair,
        // qdtext and quoted-pair: HTAB, SP, visible ASCII and obs-text (no CR, LF, DEL).
        State::ExtQuoted | State::ExtQuotedPair if b == b'\t' || (b' '..=0x7e).contains(&b) => {
            State::ExtQuoted
        }
        State::ExtQuoted | State::ExtQuotedPair if b >= 0x80 => State::ExtQuoted,
        _ => return None,
    })
}
