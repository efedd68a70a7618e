//! Reads a JSON document's top-level object one member at a time, and a member that is an array
//! one element at a time, from a reader: a 50 MB snapshot is never held as one text beside what
//! is parsed from it.
//!
//! It finds where each value ends (brackets, strings and their escapes) and leaves every check
//! of the value itself to serde_json, which parses each piece whole. Anything it does not expect
//! (a document that is not one object, nesting too deep, an I/O error) ends the read with
//! [`Unread`]: the caller then parses the whole text the ordinary way, which names the problem.

use std::io::Read;

/// The document could not be read a piece at a time; parse it whole to learn why.
#[derive(Debug)]
pub(crate) struct Unread;

/// One piece of the top-level object, with its key.
pub(crate) enum Piece<'a> {
    /// A member whose value is not an array: the value's text.
    Value(&'a [u8]),
    /// A member whose value is an array begins.
    ArrayStart,
    /// One element of that array: its text.
    Element(&'a [u8]),
}

/// Deeper than this, serde_json's own limit (128) might be reached inside the whole document
/// though not inside one piece; such a document is left to the whole parse.
const MAX_DEPTH: usize = 100;

struct Bytes<R> {
    reader: R,
    buf: Box<[u8]>,
    pos: usize,
    len: usize,
}

impl<R: Read> Bytes<R> {
    fn new(reader: R, capacity: usize) -> Self {
        Self {
            reader,
            buf: vec![0; capacity.max(1)].into_boxed_slice(),
            pos: 0,
            len: 0,
        }
    }

    /// The next byte without taking it; `None` at the end.
    fn peek(&mut self) -> Result<Option<u8>, Unread> {
        if self.pos == self.len {
            self.len = loop {
                match self.reader.read(&mut self.buf) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => return Err(Unread),
                }
            };
            self.pos = 0;
        }
        Ok((self.pos < self.len).then(|| self.buf[self.pos]))
    }

    fn take(&mut self) -> Result<Option<u8>, Unread> {
        let b = self.peek()?;
        if b.is_some() {
            self.pos += 1;
        }
        Ok(b)
    }

    /// The next byte that is not JSON white space, taken.
    fn token(&mut self) -> Result<Option<u8>, Unread> {
        loop {
            match self.take()? {
                Some(b' ' | b'\n' | b'\r' | b'\t') => {}
                other => return Ok(other),
            }
        }
    }

    /// Finds the end of one JSON value, whose first byte was just taken. When the value lies
    /// within the buffer, it is left there and `out` stays empty; when it crosses a refill, it is
    /// copied into `out` as it goes.
    fn value(&mut self, out: &mut Vec<u8>) -> Result<Span, Unread> {
        out.clear();
        let start = self.pos - 1;
        let mut from = start;
        let first = self.buf[start];
        let mut depth = usize::from(matches!(first, b'{' | b'['));
        let mut in_string = first == b'"';
        let scalar = depth == 0 && !in_string;
        loop {
            if self.pos == self.len {
                out.extend_from_slice(&self.buf[from..self.len]);
                if self.peek()?.is_none() {
                    // The end of the input ends only a number or a literal.
                    return if scalar {
                        Ok(Span::Copied)
                    } else {
                        Err(Unread)
                    };
                }
                from = 0;
            }
            let b = self.buf[self.pos];
            if in_string {
                let span = &self.buf[self.pos..self.len];
                match memchr::memchr2(b'"', b'\\', span) {
                    Some(i) if span[i] == b'\\' => {
                        self.pos += i + 1;
                        // The escaped byte, which may be past a refill.
                        if self.pos == self.len {
                            out.extend_from_slice(&self.buf[from..self.len]);
                            self.peek()?.ok_or(Unread)?;
                            from = 0;
                        }
                        self.pos += 1;
                        continue;
                    }
                    Some(i) => {
                        self.pos += i + 1;
                        in_string = false;
                        if depth == 0 {
                            break;
                        }
                        continue;
                    }
                    None => {
                        self.pos = self.len;
                        continue;
                    }
                }
            }
            if scalar {
                if matches!(b, b',' | b']' | b'}' | b' ' | b'\n' | b'\r' | b'\t') {
                    break;
                }
                self.pos += 1;
                continue;
            }
            self.pos += 1;
            match b {
                b'"' => in_string = true,
                b'{' | b'[' => {
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return Err(Unread);
                    }
                }
                b'}' | b']' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                _ => {}
            }
        }
        if out.is_empty() {
            Ok(Span::Buffered(from, self.pos))
        } else {
            out.extend_from_slice(&self.buf[from..self.pos]);
            Ok(Span::Copied)
        }
    }

    fn text<'a>(&'a self, span: Span, copied: &'a [u8]) -> &'a [u8] {
        match span {
            Span::Buffered(a, b) => &self.buf[a..b],
            Span::Copied => copied,
        }
    }
}

/// Where a value's text is: in the read buffer, or copied out of it.
#[derive(Clone, Copy)]
enum Span {
    Buffered(usize, usize),
    Copied,
}

/// Walks the top-level object of the document in `reader`, handing each piece to `each` with
/// its key. A key seen twice, or anything but one object followed by white space, is
/// [`Unread`]; so is an error `each` returns.
pub(crate) fn pieces<R: Read>(
    reader: R,
    each: impl FnMut(&str, Piece<'_>) -> Result<(), Unread>,
) -> Result<(), Unread> {
    pieces_buffered(reader, 1 << 20, each)
}

fn pieces_buffered<R: Read>(
    reader: R,
    capacity: usize,
    mut each: impl FnMut(&str, Piece<'_>) -> Result<(), Unread>,
) -> Result<(), Unread> {
    let mut bytes = Bytes::new(reader, capacity);
    let mut text = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    if bytes.token()? != Some(b'{') {
        return Err(Unread);
    }
    let mut first = true;
    loop {
        match bytes.token()? {
            Some(b'}') if first => break,
            Some(b'"') => {}
            _ => return Err(Unread),
        }
        first = false;
        let span = bytes.value(&mut text)?;
        let key: String = serde_json::from_slice(bytes.text(span, &text)).map_err(|_| Unread)?;
        if seen.contains(&key) {
            return Err(Unread);
        }
        if bytes.token()? != Some(b':') {
            return Err(Unread);
        }
        match bytes.token()?.ok_or(Unread)? {
            b'[' => {
                each(&key, Piece::ArrayStart)?;
                let mut first_element = true;
                loop {
                    match bytes.token()?.ok_or(Unread)? {
                        b']' if first_element => break,
                        _ if first_element => {}
                        b',' => {
                            bytes.token()?.ok_or(Unread)?;
                        }
                        b']' => break,
                        _ => return Err(Unread),
                    }
                    first_element = false;
                    let span = bytes.value(&mut text)?;
                    each(&key, Piece::Element(bytes.text(span, &text)))?;
                }
            }
            _ => {
                let span = bytes.value(&mut text)?;
                each(&key, Piece::Value(bytes.text(span, &text)))?;
            }
        }
        seen.push(key);
        match bytes.token()? {
            Some(b',') => {}
            Some(b'}') => break,
            _ => return Err(Unread),
        }
    }
    match bytes.token()? {
        None => Ok(()),
        Some(_) => Err(Unread),
    }
}

/// Parses one piece's text as `T`.
pub(crate) fn parse<T: serde::de::DeserializeOwned>(text: &[u8]) -> Result<T, Unread> {
    // One check of the whole piece is cheaper than serde_json's of each string in it.
    let text = std::str::from_utf8(text).map_err(|_| Unread)?;
    serde_json::from_str(text).map_err(|_| Unread)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pieces of `doc`, the same whatever the buffer's size (pieces then cross refills at
    /// every place).
    fn walk(doc: &str) -> Result<Vec<String>, Unread> {
        let whole = walk_buffered(doc, 1 << 20);
        for capacity in [1, 2, 3, 5, 8, 13, 64] {
            let pieced = walk_buffered(doc, capacity);
            assert_eq!(
                pieced.as_ref().ok(),
                whole.as_ref().ok(),
                "{doc:?} with a buffer of {capacity}"
            );
        }
        whole
    }

    fn walk_buffered(doc: &str, capacity: usize) -> Result<Vec<String>, Unread> {
        let mut seen = Vec::new();
        pieces_buffered(doc.as_bytes(), capacity, |key, piece| {
            seen.push(match piece {
                Piece::Value(t) => format!("{key}={}", String::from_utf8_lossy(t)),
                Piece::ArrayStart => format!("{key}["),
                Piece::Element(t) => format!("{key}:{}", String::from_utf8_lossy(t)),
            });
            Ok(())
        })?;
        Ok(seen)
    }

    #[test]
    fn members_and_elements_come_whole() {
        let doc = r#" { "a" : "x\"}]" , "b":[ {"c":[1,{"d":"]"}]} , 2 ,"e\\"],"n":null,"k\u0041":-1.5e3 }
        "#;
        assert_eq!(
            walk(doc).unwrap(),
            vec![
                r#"a="x\"}]""#.to_owned(),
                "b[".to_owned(),
                r#"b:{"c":[1,{"d":"]"}]}"#.to_owned(),
                "b:2".to_owned(),
                r#"b:"e\\""#.to_owned(),
                "n=null".to_owned(),
                "kA=-1.5e3".to_owned(),
            ]
        );
        assert_eq!(walk("{}").unwrap(), Vec::<String>::new());
        assert_eq!(walk(r#"{"a":[]}"#).unwrap(), vec!["a[".to_owned()]);
    }

    #[test]
    fn anything_but_one_well_formed_object_is_unread() {
        for doc in [
            "",
            "[]",
            r#"{"a":1} x"#,
            r#"{"a":1,"a":2}"#,
            r#"{"a":1,}"#,
            r#"{"a":[1,]"#,
            r#"{"a":[1 2]}"#,
            r#"{"a" 1}"#,
            r#"{"a":"open"#,
            r#"{"a":{"b":1}"#,
            r#"{,}"#,
        ] {
            assert!(walk(doc).is_err(), "{doc:?} was read");
        }
        let deep = format!(
            r#"{{"a":{}{}}}"#,
            "[".repeat(MAX_DEPTH + 2),
            "]".repeat(MAX_DEPTH + 2)
        );
        assert!(walk(&deep).is_err());
    }

    #[test]
    fn pieces_across_buffer_boundaries_are_whole() {
        let long = "y".repeat(1_100_000);
        let doc = format!(r#"{{"a":["{long}",{{"b":"{long}\"\\"}}]}}"#);
        let got = walk(&doc).unwrap();
        assert_eq!(got[1], format!(r#"a:"{long}""#));
        assert_eq!(got[2], format!(r#"a:{{"b":"{long}\"\\"}}"#));
    }
}
