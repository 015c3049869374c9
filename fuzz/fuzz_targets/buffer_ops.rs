//! Random sequences of adds, reads of lines, searches and pullups on an Evbuffer, checked against a
//! plain Vec<u8>. Any panic, overflow or disagreement is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;
use revent::buffer::{EolStyle, Evbuffer, PtrHow};

const STYLES: [EolStyle; 5] = [
    EolStyle::Any,
    EolStyle::Crlf,
    EolStyle::CrlfStrict,
    EolStyle::Lf,
    EolStyle::Nul,
];

fn ref_eol(d: &[u8], style: EolStyle) -> Option<(usize, usize)> {
    match style {
        EolStyle::Lf => d.iter().position(|&b| b == b'\n').map(|p| (p, 1)),
        EolStyle::Nul => d.iter().position(|&b| b == 0).map(|p| (p, 1)),
        EolStyle::Any => {
            let p = d.iter().position(|&b| b == b'\r' || b == b'\n')?;
            Some((p, d[p..].iter().take_while(|&&b| b == b'\r' || b == b'\n').count()))
        }
        EolStyle::Crlf => {
            let q = d.iter().position(|&b| b == b'\n')?;
            Some(if q > 0 && d[q - 1] == b'\r' { (q - 1, 2) } else { (q, 1) })
        }
        EolStyle::CrlfStrict => d.windows(2).position(|w| w == b"\r\n").map(|p| (p, 2)),
    }
}

/// Reads the fuzz input as a little byte-code.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn size(&mut self) -> Option<usize> {
        let lo = self.byte()? as usize;
        let hi = self.byte()? as usize;
        Some(hi << 8 | lo)
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = (self.byte()? as usize).min(self.0.len());
        let (b, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(b)
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let mut buf = Evbuffer::new();
    let mut other = Evbuffer::new();
    let mut model: Vec<u8> = Vec::new();
    let mut line = Vec::new();
    while let Some(op) = input.byte() {
        match op % 10 {
            0 => {
                let Some(b) = input.bytes() else { break };
                buf.add(b).unwrap();
                model.extend_from_slice(b);
            }
            1 => {
                let Some(b) = input.bytes() else { break };
                buf.add_reference(b.to_vec(), |_| {}).unwrap();
                model.extend_from_slice(b);
            }
            2 => {
                let Some(b) = input.bytes() else { break };
                buf.prepend(b).unwrap();
                model.splice(0..0, b.iter().copied());
            }
            3 => {
                let Some(s) = input.byte() else { break };
                let style = STYLES[s as usize % 5];
                let got = buf.readln_into(style, &mut line).unwrap();
                match ref_eol(&model, style) {
                    None => assert_eq!(got, None),
                    Some((p, n)) => {
                        assert_eq!(got, Some(p + n));
                        assert_eq!(line, &model[..p]);
                        model.drain(..p + n);
                    }
                }
            }
            4 => {
                let (Some(start), Some(needle)) = (input.size(), input.bytes()) else { break };
                match buf.ptr_at(start) {
                    Err(_) => assert!(start > model.len()),
                    Ok(p) => {
                        let got = buf.search(needle, Some(&p)).unwrap().map(|p| p.position());
                        let want = if needle.is_empty() {
                            Some(start)
                        } else {
                            model[start..]
                                .windows(needle.len())
                                .position(|w| w == needle)
                                .map(|i| i + start)
                        };
                        assert_eq!(got, want);
                    }
                }
            }
            5 => {
                let Some(n) = input.size() else { break };
                match buf.pullup(n) {
                    Ok(s) => assert_eq!(s, &model[..n]),
                    Err(_) => assert!(n > model.len()),
                }
            }
            6 => {
                let Some(n) = input.size() else { break };
                let k = buf.drain(n).unwrap();
                assert_eq!(k, n.min(model.len()));
                model.drain(..k);
            }
            7 => {
                // Move part of the buffer out and back to the front.
                let Some(n) = input.size() else { break };
                let k = buf.remove_buffer(&mut other, n).unwrap();
                assert_eq!(k, n.min(model.len()));
                buf.prepend_buffer(&mut other).unwrap();
            }
            8 => {
                let (Some(s), Some(start)) = (input.byte(), input.size()) else { break };
                let style = STYLES[s as usize % 5];
                if let Ok(p) = buf.ptr_at(start) {
                    let got = buf.search_eol(Some(&p), style).unwrap().map(|(p, n)| (p.position(), n));
                    let want = ref_eol(&model[start..], style).map(|(p, n)| (p + start, n));
                    assert_eq!(got, want);
                }
            }
            _ => {
                let (Some(start), Some(step)) = (input.size(), input.byte()) else { break };
                if let Ok(mut p) = buf.ptr_at(start) {
                    let step = step as usize + 1;
                    while buf.ptr_set(&mut p, step, PtrHow::Add).is_ok() {
                        let mut x = [0u8; 1];
                        let k = buf.copyout_from(&p, &mut x).unwrap();
                        assert_eq!(&x[..k], &model[p.position()..(p.position() + 1).min(model.len())]);
                    }
                }
            }
        }
        assert_eq!(buf.len(), model.len());
    }
    let all: Vec<u8> = buf.peek(usize::MAX).unwrap().flatten().copied().collect();
    assert_eq!(all, model);
});
