//! The `.npy` format (version 1.0) for the arrays a dataset stores, so numpy can open them with
//! `np.load(path, mmap_mode="r")` and our reader can memory-map them.

use std::io::{self, Write};

/// Writes the header of a C-ordered `uint8` array of `shape`; the raw bytes follow.
pub fn write_u8_header(out: &mut impl Write, shape: &[usize]) -> io::Result<()> {
    write_header(out, "|u1", shape)
}

/// Writes a header for an array of numpy type `descr` (`|u1`, `<i8`, `<u4`…) and `shape`.
pub fn write_header(out: &mut impl Write, descr: &str, shape: &[usize]) -> io::Result<()> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_text = if dims.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    let mut dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_text}, }}");
    // Magic (6) + version (2) + length (2) + dict + '\n' must be a multiple of 64.
    let unpadded = 10 + dict.len() + 1;
    dict.extend(std::iter::repeat_n(' ', unpadded.next_multiple_of(64) - unpadded));
    dict.push('\n');
    out.write_all(b"\x93NUMPY\x01\x00")?;
    out.write_all(&(dict.len() as u16).to_le_bytes())?;
    out.write_all(dict.as_bytes())
}

/// Length in bytes of the header [`write_header`] writes for the same arguments.
pub fn header_len(descr: &str, shape: &[usize]) -> usize {
    let mut buffer = Vec::new();
    write_header(&mut buffer, descr, shape).expect("writing to a Vec cannot fail");
    buffer.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_aligned_and_readable() {
        let mut out = Vec::new();
        write_u8_header(&mut out, &[3, 2000, 2000]).unwrap();
        assert_eq!(out.len() % 64, 0);
        assert_eq!(out.len(), header_len("|u1", &[3, 2000, 2000]));
        let text = String::from_utf8_lossy(&out[10..]);
        assert!(text.contains("'shape': (3, 2000, 2000)"), "{text}");
        let mut single = Vec::new();
        write_header(&mut single, "<i8", &[7]).unwrap();
        assert!(String::from_utf8_lossy(&single).contains("'shape': (7,)"));
    }
}
