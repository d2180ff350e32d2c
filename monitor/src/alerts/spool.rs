//! A sink's on-disk spool: alerts that could not be delivered yet, in order.
//!
//! `spool.dat` is an append-only file of records (`u32` little-endian length, then
//! that many bytes of alert JSON); `cursor` holds the offset of the first record not
//! yet delivered (8 bytes, little-endian), replaced atomically (write + rename) when a
//! delivery is acknowledged. A record is only ever delivered from the cursor on, and
//! the cursor only moves past it after the sink accepted it: nothing is sent twice
//! by the spool, nothing is lost while the disk keeps it. An incomplete record at the
//! end (a crash during an append) is cut off when the spool is opened.
use std::{
    fs::{self, File, OpenOptions},
    io::{self, BufReader, Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
};

/// Records larger than this are refused (an alert is a few KiB).
const MAX_RECORD: usize = 16 << 20;

pub struct Spool {
    dir: PathBuf,
    data: File,
    /// Offset of the first undelivered record.
    cursor: u64,
    /// Length of `spool.dat`.
    len: u64,
    /// Records from `cursor` to `len`.
    pending: u64,
    max_bytes: u64,
}

/// Records read from the spool; `ack` with `end` once delivered.
pub struct SpoolBatch {
    pub records: Vec<Vec<u8>>,
    pub end: u64,
}

impl Spool {
    pub fn open(dir: &Path, max_bytes: u64) -> io::Result<Spool> {
        fs::create_dir_all(dir)?;
        let data_path = dir.join("spool.dat");
        let data = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&data_path)?;
        let cursor = match fs::read(dir.join("cursor")) {
            Ok(b) if b.len() == 8 => u64::from_le_bytes(b.try_into().unwrap()),
            _ => 0,
        };
        let mut spool = Spool {
            dir: dir.to_path_buf(),
            data,
            cursor: 0,
            len: 0,
            pending: 0,
            max_bytes,
        };
        // Walk the records: count them and find where the last complete one ends.
        let file_len = spool.data.metadata()?.len();
        let cursor = cursor.min(file_len);
        let mut reader = BufReader::new(File::open(&data_path)?);
        let mut offset = 0u64;
        let mut pending = 0u64;
        let mut valid_end = 0u64;
        let mut cursor_ok = cursor == 0;
        loop {
            if offset == cursor {
                cursor_ok = true;
            }
            let mut head = [0u8; 4];
            if reader.read_exact(&mut head).is_err() {
                break;
            }
            let n = u32::from_le_bytes(head) as u64;
            if n as usize > MAX_RECORD || offset + 4 + n > file_len {
                break;
            }
            reader.seek_relative(n as i64)?;
            offset += 4 + n;
            valid_end = offset;
            if offset > cursor {
                pending += 1;
            }
        }
        if valid_end < file_len {
            tracing::warn!(
                "spool {}: cut {} bytes of an incomplete record at the end",
                dir.display(),
                file_len - valid_end
            );
            spool.data.set_len(valid_end)?;
        }
        spool.len = valid_end;
        if !cursor_ok || cursor > valid_end {
            tracing::warn!(
                "spool {}: cursor {cursor} is not at a record; delivering from the start",
                dir.display()
            );
            spool.cursor = 0;
            spool.pending = pending_from(&data_path, 0)?;
        } else {
            spool.cursor = cursor;
            spool.pending = pending;
        }
        Ok(spool)
    }

    /// Undelivered records.
    pub fn pending(&self) -> u64 {
        self.pending
    }

    pub fn is_empty(&self) -> bool {
        self.pending == 0
    }

    /// Bytes of undelivered records.
    pub fn pending_bytes(&self) -> u64 {
        self.len - self.cursor
    }

    /// Appends records in order; returns how many fit (the rest did not: the spool is
    /// full). Compacts first when the delivered prefix is in the way.
    pub fn append(&mut self, records: &[&[u8]]) -> io::Result<usize> {
        let need: u64 = records.iter().map(|r| 4 + r.len() as u64).sum();
        if self.len + need > self.max_bytes && self.cursor > 0 {
            self.compact(&[])?;
        }
        let mut buf = Vec::with_capacity(need as usize);
        let mut fitted = 0;
        let mut size = self.len;
        for r in records {
            let n = 4 + r.len() as u64;
            if size + n > self.max_bytes || r.len() > MAX_RECORD {
                break;
            }
            buf.extend_from_slice(&(r.len() as u32).to_le_bytes());
            buf.extend_from_slice(r);
            size += n;
            fitted += 1;
        }
        if !buf.is_empty() {
            self.data.write_all(&buf)?;
            self.len = size;
            self.pending += fitted as u64;
        }
        Ok(fitted)
    }

    /// Puts records before everything undelivered (alerts that were older than the
    /// spool's, held in memory). Returns how many fit.
    pub fn prepend(&mut self, records: &[&[u8]]) -> io::Result<usize> {
        self.compact(records)
    }

    /// Rewrites the spool as `front` followed by the undelivered records.
    fn compact(&mut self, front: &[&[u8]]) -> io::Result<usize> {
        let rest = self.pending_bytes();
        let mut out = Vec::new();
        let mut fitted = 0;
        for r in front {
            let n = 4 + r.len() as u64;
            if out.len() as u64 + n + rest > self.max_bytes {
                break;
            }
            out.extend_from_slice(&(r.len() as u32).to_le_bytes());
            out.extend_from_slice(r);
            fitted += 1;
        }
        let mut tail = Vec::with_capacity(rest as usize);
        let mut f = File::open(self.dir.join("spool.dat"))?;
        f.seek(SeekFrom::Start(self.cursor))?;
        f.take(rest).read_to_end(&mut tail)?;
        out.extend_from_slice(&tail);
        let tmp = self.dir.join("spool.dat.tmp");
        {
            let mut t = File::create(&tmp)?;
            t.write_all(&out)?;
            t.sync_data()?;
        }
        // Cursor 0 before the new file replaces the old: a crash in between delivers
        // the old file's delivered prefix again (a duplicate) rather than skipping
        // records of the new one.
        self.cursor = 0;
        self.write_cursor()?;
        fs::rename(&tmp, self.dir.join("spool.dat"))?;
        self.data = OpenOptions::new()
            .read(true)
            .append(true)
            .open(self.dir.join("spool.dat"))?;
        self.len = out.len() as u64;
        self.pending += fitted as u64;
        Ok(fitted)
    }

    /// Reads up to `max` undelivered records from the cursor on.
    pub fn read(&mut self, max: usize) -> io::Result<SpoolBatch> {
        let mut f = BufReader::new(File::open(self.dir.join("spool.dat"))?);
        f.seek(SeekFrom::Start(self.cursor))?;
        let mut records = Vec::new();
        let mut end = self.cursor;
        while records.len() < max && end < self.len {
            let mut head = [0u8; 4];
            f.read_exact(&mut head)?;
            let n = u32::from_le_bytes(head) as usize;
            let mut rec = vec![0u8; n];
            f.read_exact(&mut rec)?;
            end += 4 + n as u64;
            records.push(rec);
        }
        Ok(SpoolBatch { records, end })
    }

    /// Marks the records of `batch` delivered.
    pub fn ack(&mut self, batch: &SpoolBatch) -> io::Result<()> {
        self.cursor = batch.end;
        self.pending -= batch.records.len() as u64;
        if self.cursor == self.len {
            // Everything delivered: start over with an empty file.
            self.data.set_len(0)?;
            self.len = 0;
            self.cursor = 0;
        }
        self.write_cursor()
    }

    fn write_cursor(&self) -> io::Result<()> {
        let tmp = self.dir.join("cursor.tmp");
        fs::write(&tmp, self.cursor.to_le_bytes())?;
        fs::rename(&tmp, self.dir.join("cursor"))
    }
}

fn pending_from(path: &Path, start: u64) -> io::Result<u64> {
    let mut f = BufReader::new(File::open(path)?);
    f.seek(SeekFrom::Start(start))?;
    let mut count = 0;
    loop {
        let mut head = [0u8; 4];
        if f.read_exact(&mut head).is_err() {
            return Ok(count);
        }
        let n = u32::from_le_bytes(head);
        if f.seek_relative(n as i64).is_err() {
            return Ok(count);
        }
        count += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("monitor-spool-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn alerts_spool_order_ack_reopen() {
        let d = tmp("order");
        let mut s = Spool::open(&d, 1 << 20).unwrap();
        assert_eq!(s.append(&[b"a", b"bb", b"ccc"]).unwrap(), 3);
        let b = s.read(2).unwrap();
        assert_eq!(b.records, vec![b"a".to_vec(), b"bb".to_vec()]);
        s.ack(&b).unwrap();
        drop(s);
        let mut s = Spool::open(&d, 1 << 20).unwrap();
        assert_eq!(s.pending(), 1);
        assert_eq!(s.prepend(&[b"z"]).unwrap(), 1);
        let b = s.read(10).unwrap();
        assert_eq!(b.records, vec![b"z".to_vec(), b"ccc".to_vec()]);
        s.ack(&b).unwrap();
        assert!(s.is_empty());
        assert_eq!(fs::metadata(d.join("spool.dat")).unwrap().len(), 0);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn alerts_spool_bounded_and_torn_tail() {
        let d = tmp("bound");
        let mut s = Spool::open(&d, 20).unwrap();
        // 4+5 + 4+5 = 18 fits; the third does not.
        assert_eq!(s.append(&[b"12345", b"12345", b"12345"]).unwrap(), 2);
        drop(s);
        // A torn record at the end is cut off.
        let mut f = OpenOptions::new()
            .append(true)
            .open(d.join("spool.dat"))
            .unwrap();
        f.write_all(&[9, 0, 0, 0, b'x']).unwrap();
        drop(f);
        let mut s = Spool::open(&d, 20).unwrap();
        assert_eq!(s.pending(), 2);
        assert_eq!(fs::metadata(d.join("spool.dat")).unwrap().len(), 18);
        let b = s.read(1).unwrap();
        s.ack(&b).unwrap();
        // The delivered prefix is compacted away to make room.
        assert_eq!(s.append(&[b"abcde"]).unwrap(), 1);
        let b = s.read(10).unwrap();
        assert_eq!(b.records, vec![b"12345".to_vec(), b"abcde".to_vec()]);
        fs::remove_dir_all(&d).unwrap();
    }
}
