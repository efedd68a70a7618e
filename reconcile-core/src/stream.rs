//! Reads a JSON document's top-level object one member at a time, and a member that is an array
//! one element at a time, from a reader: a 50 MB snapshot is never held as one text beside what
//! is parsed from it.
//!
//! Each piece is parsed by serde_json straight from the read buffer, which tells where the piece
//! ended; a piece cut by the end of the buffer is parsed again once more of it is read. Anything
//! unexpected (a document that is not one object, a bad piece, an I/O error) ends the read with
//! [`Unread`]: the caller then parses the whole text the ordinary way, which names the problem.
//!
//! One difference from a whole parse remains, on purpose: serde_json's nesting limit (128)
//! counts from each piece here, two levels below the document's root, so an ignored value nested
//! 126 or 127 deep inside an element is read here though a whole parse would refuse it.

use serde::de::DeserializeOwned;
use std::io::Read;

/// The document could not be read a piece at a time; parse it whole to learn why.
#[derive(Debug)]
pub(crate) struct Unread;

/// A pull reader of one JSON object's members.
pub(crate) struct Reader<R> {
    reader: R,
    /// What was read and not yet parsed starts at `pos`. It is checked as UTF-8 once, as it
    /// is read, so that serde_json need not check each string again.
    text: String,
    /// The bytes of a character cut by the end of the last read.
    cut: Vec<u8>,
    pos: usize,
    /// The reader has nothing more.
    eof: bool,
    keys: Vec<String>,
    first: bool,
}

impl<R: Read> Reader<R> {
    pub(crate) fn new(reader: R) -> Self {
        Self::with_capacity(reader, 1 << 20)
    }

    fn with_capacity(reader: R, capacity: usize) -> Self {
        Self {
            reader,
            text: String::with_capacity(capacity.max(1)),
            cut: Vec::new(),
            pos: 0,
            eof: false,
            keys: Vec::new(),
            first: true,
        }
    }

    /// Reads more: keeps the unread part, and doubles the buffer when it is full of it.
    fn fill(&mut self) -> Result<(), Unread> {
        if self.eof {
            return Err(Unread);
        }
        let mut bytes = std::mem::take(&mut self.text).into_bytes();
        bytes.drain(..self.pos);
        self.pos = 0;
        bytes.append(&mut self.cut);
        if bytes.len() == bytes.capacity() {
            bytes.reserve(bytes.capacity().max(4));
        }
        let room = (bytes.capacity() - bytes.len()) as u64;
        // Into the spare capacity as it is, without zeroing it first.
        let n = (&mut self.reader)
            .take(room)
            .read_to_end(&mut bytes)
            .map_err(|_| Unread)?;
        self.eof = n == 0;
        self.text = match String::from_utf8(bytes) {
            Ok(text) => text,
            // A character cut by the end of this read waits for the next.
            Err(e) if e.utf8_error().error_len().is_none() && !self.eof => {
                let valid = e.utf8_error().valid_up_to();
                let mut bytes = e.into_bytes();
                self.cut = bytes.split_off(valid);
                String::from_utf8(bytes).map_err(|_| Unread)?
            }
            Err(_) => return Err(Unread),
        };
        Ok(())
    }

    /// The next byte that is not JSON white space, taken; `None` at the end.
    fn token(&mut self) -> Result<Option<u8>, Unread> {
        loop {
            while let Some(&b) = self.text.as_bytes().get(self.pos) {
                self.pos += 1;
                if !matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
                    return Ok(Some(b));
                }
            }
            if self.eof {
                return Ok(None);
            }
            self.fill()?;
        }
    }

    /// The next non-white byte, left in place.
    fn peek_token(&mut self) -> Result<Option<u8>, Unread> {
        let b = self.token()?;
        if b.is_some() {
            self.pos -= 1;
        }
        Ok(b)
    }

    /// One JSON value as `T`, parsed where it lies in the buffer.
    fn parse<T: DeserializeOwned>(&mut self) -> Result<T, Unread> {
        loop {
            let rest = self.text.get(self.pos..).ok_or(Unread)?;
            let mut values = serde_json::Deserializer::from_str(rest).into_iter::<T>();
            match values.next() {
                Some(Ok(value)) => {
                    let end = self.pos + values.byte_offset();
                    // A value that ends where the buffer does may go on past it (a number).
                    if end < self.text.len() || self.eof {
                        self.pos = end;
                        return Ok(value);
                    }
                }
                Some(Err(e)) if e.is_eof() => {}
                None => {}
                Some(Err(_)) => return Err(Unread),
            }
            if self.eof {
                return Err(Unread);
            }
            self.fill()?;
        }
    }

    /// The opening of the document's object.
    pub(crate) fn begin(&mut self) -> Result<(), Unread> {
        match self.token()? {
            Some(b'{') => Ok(()),
            _ => Err(Unread),
        }
    }

    /// The next member's key, its colon taken; `None` after the object's close. A key seen
    /// before is [`Unread`].
    pub(crate) fn next_key(&mut self) -> Result<Option<String>, Unread> {
        match (self.token()?, self.first) {
            (Some(b'}'), _) => return Ok(None),
            (Some(b','), false) => {}
            (Some(b'"'), true) => self.pos -= 1,
            _ => return Err(Unread),
        }
        self.first = false;
        if self.peek_token()? != Some(b'"') {
            return Err(Unread);
        }
        let key: String = self.parse()?;
        if self.keys.contains(&key) || self.token()? != Some(b':') {
            return Err(Unread);
        }
        self.keys.push(key.clone());
        Ok(Some(key))
    }

    /// The current member's value as `T`.
    pub(crate) fn value<T: DeserializeOwned>(&mut self) -> Result<T, Unread> {
        self.parse()
    }

    /// Takes the opening of an array if the current member's value is one.
    pub(crate) fn array(&mut self) -> Result<bool, Unread> {
        if self.peek_token()? == Some(b'[') {
            self.pos += 1;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    /// Each element of the array [`Self::array`] opened, in order, to `each`.
    pub(crate) fn elements<T: DeserializeOwned>(
        &mut self,
        mut each: impl FnMut(T),
    ) -> Result<(), Unread> {
        if self.peek_token()? == Some(b']') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            each(self.parse()?);
            match self.token()? {
                Some(b',') => {}
                Some(b']') => return Ok(()),
                _ => return Err(Unread),
            }
        }
    }

    /// Every element of the array [`Self::array`] opened.
    pub(crate) fn list<T: DeserializeOwned>(&mut self) -> Result<Vec<T>, Unread> {
        let mut all = Vec::new();
        self.elements(|x| all.push(x))?;
        Ok(all)
    }

    /// Nothing but white space follows the object.
    pub(crate) fn end(mut self) -> Result<(), Unread> {
        match self.token()? {
            None => Ok(()),
            Some(_) => Err(Unread),
        }
    }
}

/// Reads the one object in `reader`, handing each member's key, with the reader at its value,
/// to `member`.
pub(crate) fn members<R: Read>(
    reader: R,
    mut member: impl FnMut(&str, &mut Reader<R>) -> Result<(), Unread>,
) -> Result<(), Unread> {
    let mut r = Reader::new(reader);
    r.begin()?;
    while let Some(key) = r.next_key()? {
        member(&key, &mut r)?;
    }
    r.end()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// The members of `doc` (arrays element by element), the same whatever the buffer's size
    /// (pieces then cross refills at every place).
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
        walk_bytes(doc.as_bytes(), capacity)
    }

    fn walk_bytes(doc: &[u8], capacity: usize) -> Result<Vec<String>, Unread> {
        let mut seen = Vec::new();
        let mut r = Reader::with_capacity(doc, capacity);
        r.begin()?;
        while let Some(key) = r.next_key()? {
            if r.array()? {
                seen.push(format!("{key}["));
                r.elements(|v: Value| seen.push(format!("{key}:{v}")))?;
            } else {
                let v: Value = r.value()?;
                seen.push(format!("{key}={v}"));
            }
        }
        r.end()?;
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
                "kA=-1.5e+3".to_owned(),
            ]
        );
        assert_eq!(walk("{}").unwrap(), Vec::<String>::new());
        assert_eq!(walk(r#"{"a":[]}"#).unwrap(), vec!["a[".to_owned()]);
        assert_eq!(walk(r#"{"n":12345}"#).unwrap(), vec!["n=12345".to_owned()]);
    }

    #[test]
    fn anything_but_one_well_formed_object_is_unread() {
        for doc in [
            "",
            "[]",
            r#"{"a":1} x"#,
            r#"{"a":1,"a":2}"#,
            r#"{"a":1,}"#,
            r#"{"a":[1,]}"#,
            r#"{"a":[1 2]}"#,
            r#"{"a" 1}"#,
            r#"{"a":"open"#,
            r#"{"a":{"b":1}"#,
            r#"{,}"#,
            r#"{"a":[1,2"#,
            r#"{"a":12"#,
        ] {
            assert!(walk(doc).is_err(), "{doc:?} was read");
        }
    }

    #[test]
    fn characters_cut_by_a_read_are_whole_and_bad_bytes_are_unread() {
        let doc = r#"{"é":"€ 😀 ü","b":["😀😀",{"ж":"ℝ"}]}"#;
        assert_eq!(
            walk(doc).unwrap(),
            vec![
                r#"é="€ 😀 ü""#.to_owned(),
                "b[".to_owned(),
                r#"b:"😀😀""#.to_owned(),
                r#"b:{"ж":"ℝ"}"#.to_owned(),
            ]
        );
        for capacity in [1, 2, 3, 4, 5, 64] {
            for bad in [
                &b"{\"a\":\"\xff\"}"[..],
                b"{\"a\":\"\xe2\x82\"}",
                b"{\"a\":\"x\"}\xe2\x82",
                b"{\"a\":\"\xe2\x82",
            ] {
                assert!(
                    walk_bytes(bad, capacity).is_err(),
                    "{bad:?} with {capacity}"
                );
            }
        }
    }

    #[test]
    fn pieces_longer_than_the_buffer_are_whole() {
        let long = "y".repeat(1_100_000);
        let doc = format!(r#"{{"a":["{long}",{{"b":"{long}\"\\"}}]}}"#);
        let got = walk(&doc).unwrap();
        assert_eq!(got[1], format!(r#"a:"{long}""#));
        assert_eq!(got[2], format!(r#"a:{{"b":"{long}\"\\"}}"#));
    }
}
