//! An `ip_tables` table as the kernel hands it out (a blob of entries),
//! split into chains so that ccrun can add and remove its own rules and
//! chains and lay the blob out again.
//!
//! Entries ccrun does not touch keep their bytes; only the verdicts of
//! jumps are rewritten, to the new offsets of the entries they pointed to,
//! since inserting or removing entries moves everything behind them.

use std::collections::HashMap;
use std::mem::size_of;

use zerocopy::{FromBytes, IntoBytes};

use super::abi::{
    field_str, name_field, xt_align, IptEntry, IptIp, IptReplace, XtCounters, XtExtensionHeader,
    CHAIN_MAXLEN, ERROR_TARGET, FUNCTION_MAXNAMELEN, HOOK_NAMES, NUMHOOKS, STANDARD_TARGET,
    VERDICT_RETURN,
};

const ENTRY_SIZE: usize = size_of::<IptEntry>();
const EXT_HEADER: usize = size_of::<XtExtensionHeader>();

/// Why a table blob could not be understood or laid out.
#[derive(Debug)]
pub struct TableError(pub String);

type Result<T> = std::result::Result<T, TableError>;

fn bad<T>(why: impl Into<String>) -> Result<T> {
    Err(TableError(why.into()))
}

/// Where a standard target's verdict sends a packet, if it jumps.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Jump {
    /// To the entry at this offset of the table the entry was read from.
    Old(u32),
    /// To the first rule of this chain (rules ccrun builds).
    Chain(String),
}

/// One entry: a rule, a chain head or a chain's policy/return.
#[derive(Clone, Debug)]
pub struct Entry {
    bytes: Vec<u8>,
    /// Index and offset in the table it was read from.
    old: Option<(usize, u32)>,
    jump: Option<Jump>,
}

impl Entry {
    /// A new entry from its parts: the IP part, the matches (each built by
    /// [`extension`]) and the target (likewise).
    pub fn new(ip: IptIp, matches: &[Vec<u8>], target: Vec<u8>) -> Entry {
        let matches_len: usize = matches.iter().map(Vec::len).sum();
        let target_offset = ENTRY_SIZE + matches_len;
        let next_offset = target_offset + target.len();
        let head = IptEntry {
            ip,
            nfcache: 0,
            target_offset: target_offset as u16,
            next_offset: next_offset as u16,
            comefrom: 0,
            counters: XtCounters::default(),
        };
        let mut bytes = head.as_bytes().to_vec();
        for m in matches {
            bytes.extend_from_slice(m);
        }
        bytes.extend_from_slice(&target);
        Entry {
            bytes,
            old: None,
            jump: None,
        }
    }

    /// A rule jumping to user chain `chain`.
    pub fn jump(ip: IptIp, matches: &[Vec<u8>], chain: &str) -> Entry {
        let mut e = Entry::new(ip, matches, standard_target(0));
        e.jump = Some(Jump::Chain(chain.to_string()));
        e
    }

    fn header(&self) -> IptEntry {
        // Checked when parsed or built: the bytes start with a whole header.
        IptEntry::read_from_prefix(&self.bytes)
            .map(|(h, _)| h)
            .unwrap_or_else(|_| unreachable!("entry shorter than its header"))
    }

    fn target_offset(&self) -> usize {
        self.header().target_offset as usize
    }

    /// The target's name and data.
    fn target(&self) -> (String, &[u8]) {
        let (name, _, data) = self.target_parts();
        (name, data)
    }

    /// The target's name, revision and data (padding included).
    pub fn target_parts(&self) -> (String, u8, &[u8]) {
        let at = self.target_offset();
        let name = field_str(&self.bytes[at + 2..at + 2 + 29]);
        (name, self.bytes[at + 31], &self.bytes[at + EXT_HEADER..])
    }

    fn verdict(&self) -> Option<i32> {
        let (name, data) = self.target();
        (name == STANDARD_TARGET && data.len() >= 4)
            .then(|| i32::from_ne_bytes([data[0], data[1], data[2], data[3]]))
    }

    fn set_verdict(&mut self, verdict: i32) {
        let at = self.target_offset() + EXT_HEADER;
        self.bytes[at..at + 4].copy_from_slice(&verdict.to_ne_bytes());
    }

    /// The chain name of an `ERROR` target entry.
    fn error_name(&self) -> Option<String> {
        let (name, data) = self.target();
        (name == ERROR_TARGET).then(|| field_str(data))
    }

    /// The matches: (name, data) each.
    pub fn matches(&self) -> Vec<(String, &[u8])> {
        let mut out = Vec::new();
        let (mut at, end) = (ENTRY_SIZE, self.target_offset());
        while at + EXT_HEADER <= end {
            let size = u16::from_ne_bytes([self.bytes[at], self.bytes[at + 1]]) as usize;
            if size < EXT_HEADER || at + size > end {
                break;
            }
            let name = field_str(&self.bytes[at + 2..at + 2 + 29]);
            out.push((name, &self.bytes[at + EXT_HEADER..at + size]));
            at += size;
        }
        out
    }

    /// The text of the rule's `comment` match, if it has one.
    pub fn comment(&self) -> Option<String> {
        self.matches()
            .into_iter()
            .find(|(name, _)| name == "comment")
            .map(|(_, data)| field_str(data))
    }
}

/// A match or target: header (size, name, revision) and `data` padded to
/// `XT_ALIGN`.
pub fn extension(name: &str, revision: u8, data: &[u8]) -> Vec<u8> {
    let size = xt_align(EXT_HEADER + data.len());
    let head = XtExtensionHeader {
        size: size as u16,
        name: name_field(name),
        revision,
    };
    let mut out = head.as_bytes().to_vec();
    out.extend_from_slice(data);
    out.resize(size, 0);
    out
}

/// The standard target with `verdict`.
pub fn standard_target(verdict: i32) -> Vec<u8> {
    extension(STANDARD_TARGET, 0, &verdict.to_ne_bytes())
}

fn error_target(name: &str) -> Vec<u8> {
    extension(ERROR_TARGET, 0, &name_field::<FUNCTION_MAXNAMELEN>(name))
}

/// A chain: built in (on a hook, ending with its policy) or user-defined
/// (an `ERROR` head naming it, ending with `RETURN`).
#[derive(Clone, Debug)]
pub struct Chain {
    /// The chain's name.
    pub name: String,
    hook: Option<usize>,
    head: Option<Entry>,
    /// The rules, in order.
    pub rules: Vec<Entry>,
    tail: Entry,
}

/// A chain while parsing: name, hook, head, entries up to the next chain.
type Segment = (String, Option<usize>, Option<Entry>, Vec<Entry>);

/// A whole table.
#[derive(Clone, Debug)]
pub struct Table {
    name: String,
    valid_hooks: u32,
    chains: Vec<Chain>,
    end: Entry,
    old_entries: usize,
    /// Old offset of every entry → name of the chain holding it.
    old_chain_of: HashMap<u32, String>,
}

impl Table {
    /// Splits the entries blob of table `name` (from `IPT_SO_GET_ENTRIES`)
    /// into chains, using the hook offsets of `IPT_SO_GET_INFO`.
    pub fn parse(
        name: &str,
        valid_hooks: u32,
        hook_entry: [u32; NUMHOOKS],
        underflow: [u32; NUMHOOKS],
        blob: &[u8],
    ) -> Result<Table> {
        let mut entries = Vec::new();
        let mut at = 0usize;
        while at < blob.len() {
            let Ok((head, _)) = IptEntry::read_from_prefix(&blob[at..]) else {
                return bad(format!("truncated entry at offset {at}"));
            };
            let (next, target) = (head.next_offset as usize, head.target_offset as usize);
            if next < ENTRY_SIZE + EXT_HEADER
                || at + next > blob.len()
                || target < ENTRY_SIZE
                || target + EXT_HEADER > next
            {
                return bad(format!("entry at offset {at} has bad offsets"));
            }
            let mut e = Entry {
                bytes: blob[at..at + next].to_vec(),
                old: Some((entries.len(), at as u32)),
                jump: None,
            };
            if let Some(v) = e.verdict() {
                if v >= 0 {
                    e.jump = Some(Jump::Old(v as u32));
                }
            }
            entries.push(e);
            at += next;
        }
        let old_entries = entries.len();
        let Some(end) = entries.pop() else {
            return bad("no entries");
        };
        if end.error_name().is_none() {
            return bad("the last entry is not an ERROR target");
        }
        let hook_at = |offset: u32| {
            (0..NUMHOOKS).find(|h| valid_hooks & (1 << h) != 0 && hook_entry[*h] == offset)
        };

        // Chains start at a hook's entry or at an ERROR head and run up to
        // the next start.
        let mut segments: Vec<Segment> = Vec::new();
        for e in entries {
            let offset = e.old.map_or(0, |(_, o)| o);
            if let Some(hook) = hook_at(offset) {
                segments.push((HOOK_NAMES[hook].to_string(), Some(hook), None, vec![e]));
            } else if let Some(chain) = e.error_name() {
                segments.push((chain, None, Some(e), Vec::new()));
            } else if let Some((.., rules)) = segments.last_mut() {
                rules.push(e);
            } else {
                return bad(format!("entry at offset {offset} is outside any chain"));
            }
        }
        let mut chains: Vec<Chain> = Vec::new();
        for (name, hook, head, mut rules) in segments {
            let Some(tail) = rules.pop() else {
                return bad(format!("chain {name} has no end"));
            };
            let offset = tail.old.map_or(0, |(_, o)| o);
            let ends = match hook {
                Some(h) => underflow[h] == offset,
                None => tail.verdict() == Some(VERDICT_RETURN) && is_unconditional(&tail),
            };
            if !ends {
                return bad(format!(
                    "chain {name} does not end with its policy or RETURN"
                ));
            }
            chains.push(Chain {
                name,
                hook,
                head,
                rules,
                tail,
            });
        }
        // A jump to a chain's first entry is a jump to the chain, wherever
        // its first rule ends up (or whether it stays at all).
        let mut starts: HashMap<u32, String> = HashMap::new();
        for c in chains.iter().filter(|c| c.hook.is_none()) {
            if let Some((_, offset)) = c.rules.first().unwrap_or(&c.tail).old {
                starts.insert(offset, c.name.clone());
            }
        }
        for c in &mut chains {
            for e in c.rules.iter_mut().chain([&mut c.tail]) {
                if let Some(Jump::Old(offset)) = e.jump {
                    if let Some(name) = starts.get(&offset) {
                        e.jump = Some(Jump::Chain(name.clone()));
                    }
                }
            }
        }
        let mut old_chain_of = HashMap::new();
        for c in &chains {
            for e in c.head.iter().chain(&c.rules).chain([&c.tail]) {
                if let Some((_, offset)) = e.old {
                    old_chain_of.insert(offset, c.name.clone());
                }
            }
        }
        Ok(Table {
            name: name.to_string(),
            valid_hooks,
            chains,
            end,
            old_entries,
            old_chain_of,
        })
    }

    /// The chain called `name`.
    pub fn chain(&self, name: &str) -> Option<&Chain> {
        self.chains.iter().find(|c| c.name == name)
    }

    /// The chain called `name`, mutably.
    pub fn chain_mut(&mut self, name: &str) -> Option<&mut Chain> {
        self.chains.iter_mut().find(|c| c.name == name)
    }

    /// The names of all chains.
    pub fn chain_names(&self) -> Vec<String> {
        self.chains.iter().map(|c| c.name.clone()).collect()
    }

    /// The chain `entry` jumps to, if it jumps.
    pub fn jump_target(&self, entry: &Entry) -> Option<String> {
        match entry.jump.as_ref()? {
            Jump::Chain(name) => Some(name.clone()),
            Jump::Old(offset) => self.old_chain_of.get(offset).cloned(),
        }
    }

    /// Creates an empty user chain `name` (before the table's end) unless
    /// it exists.
    pub fn ensure_user_chain(&mut self, name: &str) -> Result<()> {
        if self.chain(name).is_some() {
            return Ok(());
        }
        if name.is_empty() || name.len() > CHAIN_MAXLEN {
            return bad(format!("chain name {name:?} is longer than {CHAIN_MAXLEN}"));
        }
        self.chains.push(Chain {
            name: name.to_string(),
            hook: None,
            head: Some(Entry::new(IptIp::default(), &[], error_target(name))),
            rules: Vec::new(),
            tail: Entry::new(IptIp::default(), &[], standard_target(VERDICT_RETURN)),
        });
        Ok(())
    }

    /// Removes user chain `name` with its rules, if it exists. Refused if a
    /// rule of another chain still jumps into it.
    pub fn remove_user_chain(&mut self, name: &str) -> Result<()> {
        let Some(index) = self
            .chains
            .iter()
            .position(|c| c.name == name && c.hook.is_none())
        else {
            return Ok(());
        };
        for c in self.chains.iter().filter(|c| c.name != name) {
            if c.rules
                .iter()
                .any(|r| self.jump_target(r).as_deref() == Some(name))
            {
                return bad(format!(
                    "chain {name} is still referenced from chain {}",
                    c.name
                ));
            }
        }
        self.chains.remove(index);
        Ok(())
    }

    /// Lays the table out again: the `IPT_SO_SET_REPLACE` header (without
    /// the counters pointer), the entries blob, and for every new entry the
    /// index it had in the table read (`None` for new ones).
    pub fn serialize(&self) -> Result<(IptReplace, Vec<u8>, Vec<Option<usize>>)> {
        // Offsets first: every entry's new offset, and where jumps land.
        let mut offset = 0u32;
        let mut new_of_old: HashMap<u32, u32> = HashMap::new();
        let mut chain_start: HashMap<&str, u32> = HashMap::new();
        let mut hook_entry = [0u32; NUMHOOKS];
        let mut underflow = [0u32; NUMHOOKS];
        let mut place = |e: &Entry, offset: &mut u32| -> u32 {
            let at = *offset;
            if let Some((_, old)) = e.old {
                new_of_old.insert(old, at);
            }
            *offset += e.bytes.len() as u32;
            at
        };
        for c in &self.chains {
            if let Some(head) = &c.head {
                place(head, &mut offset);
            }
            chain_start.insert(c.name.as_str(), offset);
            if let Some(hook) = c.hook {
                hook_entry[hook] = offset;
            }
            for r in &c.rules {
                place(r, &mut offset);
            }
            let tail = place(&c.tail, &mut offset);
            if let Some(hook) = c.hook {
                underflow[hook] = tail;
            }
        }
        place(&self.end, &mut offset);

        let mut blob = Vec::with_capacity(offset as usize);
        let mut origin = Vec::new();
        let all = self
            .chains
            .iter()
            .flat_map(|c| c.head.iter().chain(&c.rules).chain([&c.tail]))
            .chain([&self.end]);
        for e in all {
            let mut e = e.clone();
            match &e.jump {
                Some(Jump::Old(old)) => match new_of_old.get(old) {
                    Some(new) => e.set_verdict(*new as i32),
                    None => {
                        let from = self.old_chain_of.get(&e.old.map_or(0, |(_, o)| o));
                        return bad(format!(
                            "a rule of chain {} jumps to a removed entry",
                            from.map_or("?", String::as_str)
                        ));
                    }
                },
                Some(Jump::Chain(name)) => match chain_start.get(name.as_str()) {
                    Some(at) => e.set_verdict(*at as i32),
                    None => return bad(format!("jump to missing chain {name}")),
                },
                None => {}
            }
            origin.push(e.old.map(|(index, _)| index));
            blob.extend_from_slice(&e.bytes);
        }
        let head = IptReplace {
            name: name_field(&self.name),
            valid_hooks: self.valid_hooks,
            num_entries: origin.len() as u32,
            size: blob.len() as u32,
            hook_entry,
            underflow,
            num_counters: self.old_entries as u32,
            counters: 0,
        };
        Ok((head, blob, origin))
    }
}

/// Whether the entry's IP part matches every packet.
fn is_unconditional(e: &Entry) -> bool {
    let zero = IptIp::default();
    e.header().ip.as_bytes() == zero.as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table like a fresh `nat`: four built-in chains with ACCEPT
    /// policies, and the end.
    fn empty_nat() -> (u32, [u32; NUMHOOKS], [u32; NUMHOOKS], Vec<u8>) {
        let policy = Entry::new(IptIp::default(), &[], standard_target(-2));
        let end = Entry::new(IptIp::default(), &[], error_target(ERROR_TARGET));
        let mut blob = Vec::new();
        let mut hooks = [0u32; NUMHOOKS];
        for h in [0usize, 1, 3, 4] {
            hooks[h] = blob.len() as u32;
            blob.extend_from_slice(&policy.bytes);
        }
        blob.extend_from_slice(&end.bytes);
        (0x1b, hooks, hooks, blob)
    }

    #[test]
    fn round_trips_and_relocates_jumps() {
        let (valid, hooks, under, blob) = empty_nat();
        let t = Table::parse("nat", valid, hooks, under, &blob).unwrap();
        assert_eq!(
            t.chain_names(),
            vec!["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"]
        );
        let (head, out, origin) = t.serialize().unwrap();
        assert_eq!(out, blob);
        assert_eq!(head.hook_entry, hooks);
        assert_eq!(origin, (0..5).map(Some).collect::<Vec<_>>());

        // A user chain and a jump to it from PREROUTING, then read back.
        let mut t = t;
        t.ensure_user_chain("FOREIGN").unwrap();
        let jump = Entry::jump(IptIp::default(), &[], "FOREIGN");
        t.chain_mut("PREROUTING").unwrap().rules.push(jump);
        let (head, blob2, _) = t.serialize().unwrap();
        let t2 = Table::parse("nat", valid, head.hook_entry, head.underflow, &blob2).unwrap();
        let rule = &t2.chain("PREROUTING").unwrap().rules[0];
        assert_eq!(t2.jump_target(rule).as_deref(), Some("FOREIGN"));

        // Inserting before the jump moves everything; the jump follows.
        let mut t3 = t2.clone();
        t3.ensure_user_chain("CCRUN-X").unwrap();
        let ours = Entry::jump(IptIp::default(), &[], "CCRUN-X");
        t3.chain_mut("PREROUTING").unwrap().rules.insert(0, ours);
        let (head, blob3, origin) = t3.serialize().unwrap();
        assert_eq!(origin[0], None);
        let t4 = Table::parse("nat", valid, head.hook_entry, head.underflow, &blob3).unwrap();
        let rules = &t4.chain("PREROUTING").unwrap().rules;
        assert_eq!(t4.jump_target(&rules[0]).as_deref(), Some("CCRUN-X"));
        assert_eq!(t4.jump_target(&rules[1]).as_deref(), Some("FOREIGN"));

        // Rules added to and removed from the start of a chain: jumps
        // still land on the chain's (new) first entry.
        let mut t6 = t4.clone();
        let rule = Entry::new(IptIp::default(), &[], standard_target(-2));
        t6.chain_mut("CCRUN-X").unwrap().rules.push(rule);
        let (head, blob6, _) = t6.serialize().unwrap();
        let mut t7 = Table::parse("nat", valid, head.hook_entry, head.underflow, &blob6).unwrap();
        let first = t7.chain("PREROUTING").unwrap().rules[0].clone();
        let verdict = first.verdict().unwrap() as usize;
        let target = IptEntry::read_from_prefix(&blob6[verdict..]).unwrap().0;
        assert_eq!(target.ip.as_bytes(), IptIp::default().as_bytes());
        assert_eq!(
            &blob6[verdict..verdict + 152],
            &t7.chain("CCRUN-X").unwrap().rules[0].bytes[..]
        );
        t7.chain_mut("CCRUN-X").unwrap().rules.clear();
        let (head, blob8, _) = t7.serialize().unwrap();
        let t8 = Table::parse("nat", valid, head.hook_entry, head.underflow, &blob8).unwrap();
        assert_eq!(
            t8.jump_target(&t8.chain("PREROUTING").unwrap().rules[0])
                .as_deref(),
            Some("CCRUN-X")
        );

        // A referenced chain cannot go.
        let mut t5 = t4.clone();
        assert!(t5.remove_user_chain("FOREIGN").is_err());
        t5.chain_mut("PREROUTING").unwrap().rules.remove(0);
        t5.remove_user_chain("CCRUN-X").unwrap();
        let (_, blob5, _) = t5.serialize().unwrap();
        assert_eq!(blob5, blob2);
    }

    #[test]
    fn targets_have_the_kernels_sizes() {
        // sizeof(struct xt_standard_target), sizeof(struct xt_error_target).
        assert_eq!(standard_target(0).len(), 40);
        assert_eq!(error_target("X").len(), 64);
        let e = Entry::new(IptIp::default(), &[], standard_target(-5));
        assert_eq!(e.bytes.len(), 152);
        assert_eq!(e.verdict(), Some(VERDICT_RETURN));
    }

    #[test]
    fn rejects_garbage() {
        assert!(Table::parse("nat", 0x1b, [0; 5], [0; 5], &[]).is_err());
        assert!(Table::parse("nat", 0x1b, [0; 5], [0; 5], &[0u8; 200]).is_err());
    }
}
