//! Groups, as PartnerStack has them: every partnership belongs to one, and
//! an offer may be scoped to one, which is how a program has tiers (gold
//! partners earn 30 %, the rest 20 %). Every key has a default group
//! (`default`), which new partnerships join unless told otherwise.

use super::db::Value;
use super::db::{params, Db, OptionalExtension, Row};
use super::page::{self, List, Page};
use super::Refusal;
use anyhow::Result;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub id: i64,
    pub key: String,
    pub name: String,
    pub slug: String,
    pub is_default: bool,
    pub archived_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

pub const DEFAULT_KEY: &str = "default";

const COLUMNS: &str = "id, group_key, name, slug, is_default, archived_at, created_at, updated_at";

fn row(row: &Row) -> anyhow::Result<Group> {
    Ok(Group {
        id: row.get(0)?,
        key: row.get(1)?,
        name: row.get(2)?,
        slug: row.get(3)?,
        is_default: row.get(4)?,
        archived_at: row.get(5)?,
        created_at: row.get(6)?,
        updated_at: row.get(7)?,
    })
}

/// Gives a new key its default group.
pub fn create_default(conn: &Db, key_id: i64, now: i64) -> Result<()> {
    conn.execute(
        "INSERT INTO groups (key_id, group_key, name, slug, is_default, created_at, updated_at)
         VALUES (?1, ?2, 'Default', ?2, 1, ?3, ?3)",
        params![key_id, DEFAULT_KEY, now],
    )?;
    Ok(())
}

/// A slug from a name: lower-case letters and digits, dashes between words.
fn slug_of(name: &str) -> String {
    let words: Vec<String> = name
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    words.join("-")
}

pub fn create(conn: &Db, key_id: i64, group_key: &str, name: &str, now: i64) -> Result<Group> {
    if find(conn, key_id, group_key)?.is_some() {
        return Err(Refusal::conflict("key", format!("group {group_key:?} exists")).into());
    }
    conn.execute(
        "INSERT INTO groups (key_id, group_key, name, slug, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
        params![key_id, group_key, name, slug_of(name), now],
    )?;
    get(conn, key_id, group_key)
}

pub fn find(conn: &Db, key_id: i64, group_key: &str) -> Result<Option<Group>> {
    let sql = format!("SELECT {COLUMNS} FROM groups WHERE key_id = ?1 AND group_key = ?2");
    conn.query_row(&sql, params![key_id, group_key], row).optional()
}

pub fn get(conn: &Db, key_id: i64, group_key: &str) -> Result<Group> {
    find(conn, key_id, group_key)?
        .ok_or_else(|| Refusal::not_found("group_key", format!("no group {group_key:?}")).into())
}

/// The group a partnership or offer may join: it exists and is not archived.
pub fn joinable(conn: &Db, key_id: i64, group_key: &str) -> Result<Group> {
    let group = get(conn, key_id, group_key)?;
    if group.archived_at.is_some() {
        return Err(Refusal::conflict("group_key", format!("group {group_key:?} is archived")).into());
    }
    Ok(group)
}

pub fn default_group(conn: &Db, key_id: i64) -> Result<Group> {
    let sql = format!("SELECT {COLUMNS} FROM groups WHERE key_id = ?1 AND is_default = 1");
    conn.query_row(&sql, [key_id], row)
}

/// A key's groups; archived ones too when asked.
pub fn list(conn: &Db, key_id: i64, include_archived: bool, list: List) -> Result<Page<Group>> {
    let mut select = format!("SELECT {COLUMNS} FROM groups WHERE key_id = ?1");
    if !include_archived {
        select += " AND archived_at IS NULL";
    }
    page::fetch(conn, &select, "", vec![Value::Integer(key_id)], list, row)
}

/// Renames a group, or makes it the default one.
pub fn update(
    conn: &Db,
    key_id: i64,
    group_key: &str,
    name: Option<String>,
    make_default: bool,
    now: i64,
) -> Result<Group> {
    let current = get(conn, key_id, group_key)?;
    if make_default && !current.is_default {
        if current.archived_at.is_some() {
            return Err(Refusal::conflict("default", "an archived group cannot be the default").into());
        }
        conn.execute(
            "UPDATE groups SET is_default = 0, updated_at = ?2 WHERE key_id = ?1 AND is_default = 1",
            params![key_id, now],
        )?;
    }
    let name = name.unwrap_or(current.name);
    conn.execute(
        "UPDATE groups SET name = ?2, slug = ?3, is_default = ?4, updated_at = ?5 WHERE id = ?1",
        params![
            current.id,
            name,
            slug_of(&name),
            current.is_default || make_default,
            now
        ],
    )?;
    get(conn, key_id, group_key)
}

/// Archives a group: no partnership or offer joins it any more. Its
/// partnerships stay in it and keep earning; the default group stays.
pub fn archive(conn: &Db, key_id: i64, group_key: &str, now: i64) -> Result<Group> {
    let current = get(conn, key_id, group_key)?;
    if current.is_default {
        return Err(Refusal::conflict("key", "the default group cannot be archived; make another the default").into());
    }
    conn.execute(
        "UPDATE groups SET archived_at = coalesce(archived_at, ?2), updated_at = ?2 WHERE id = ?1",
        params![current.id, now],
    )?;
    get(conn, key_id, group_key)
}

#[cfg(test)]
mod tests {
    use super::slug_of;

    #[test]
    fn a_slug_is_lower_case_words_joined_by_dashes() {
        assert_eq!(slug_of("Gold Partners (EU)"), "gold-partners-eu");
    }
}
