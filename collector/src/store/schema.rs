//! Schema migrations, applied in order at start-up and recorded in
//! `PRAGMA user_version`. Append new steps; never edit a released one.

use anyhow::Result;
use rusqlite::{Connection, OptionalExtension};

const MIGRATIONS: &[&str] = &[
    // 1: keys, the raw event log, and customers (the partner → customer line items).
    "CREATE TABLE keys (
        id INTEGER PRIMARY KEY,
        public_key TEXT NOT NULL UNIQUE,
        secret_hash BLOB NOT NULL,
        live INTEGER NOT NULL,
        name TEXT NOT NULL DEFAULT '',
        origins TEXT NOT NULL DEFAULT '',
        created_at INTEGER NOT NULL,
        revoked_at INTEGER
    );
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY,
        key_id INTEGER NOT NULL REFERENCES keys(id),
        event_id TEXT NOT NULL,
        type TEXT NOT NULL,
        received_at INTEGER NOT NULL,
        client_ts INTEGER NOT NULL,
        partner_key TEXT,
        xid TEXT,
        url TEXT,
        referrer TEXT,
        customer_key TEXT,
        email TEXT,
        name TEXT,
        provider_key TEXT
    );
    CREATE UNIQUE INDEX events_by_id ON events(key_id, event_id);
    CREATE INDEX clicks_by_xid ON events(key_id, xid) WHERE type = 'click' AND xid IS NOT NULL;
    CREATE TABLE customers (
        id INTEGER PRIMARY KEY,
        key_id INTEGER NOT NULL REFERENCES keys(id),
        customer_key TEXT NOT NULL,
        email TEXT NOT NULL,
        name TEXT NOT NULL,
        provider_key TEXT,
        partner_key TEXT,
        xid TEXT,
        source TEXT,
        event_id TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        UNIQUE (key_id, customer_key)
    );
    CREATE INDEX customers_by_partner ON customers(key_id, partner_key);",
    // 2: per-key attribution settings, and the visitor fingerprint of events.
    "ALTER TABLE keys ADD COLUMN cookie_domain TEXT NOT NULL DEFAULT '';
    ALTER TABLE keys ADD COLUMN window_days INTEGER NOT NULL DEFAULT 90;
    ALTER TABLE keys ADD COLUMN params TEXT NOT NULL DEFAULT '';
    ALTER TABLE keys ADD COLUMN require_consent INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE keys ADD COLUMN honor_gpc INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE events ADD COLUMN fingerprint TEXT;
    CREATE INDEX clicks_by_fingerprint ON events(key_id, fingerprint, received_at)
        WHERE type = 'click' AND fingerprint IS NOT NULL;",
    // 3: the merchant side: partners, transactions, offers, rewards, webhooks.
    "CREATE TABLE partners (
        id INTEGER PRIMARY KEY,
        key_id INTEGER NOT NULL REFERENCES keys(id),
        partner_key TEXT NOT NULL,
        email TEXT NOT NULL,
        first_name TEXT NOT NULL,
        last_name TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        UNIQUE (key_id, partner_key),
        UNIQUE (key_id, email)
    );
    ALTER TABLE customers ADD COLUMN updated_at INTEGER NOT NULL DEFAULT 0;
    UPDATE customers SET updated_at = created_at;
    CREATE INDEX customers_by_email ON customers(key_id, email);
    CREATE INDEX customers_by_provider ON customers(key_id, provider_key) WHERE provider_key IS NOT NULL;
    CREATE TABLE transactions (
        id INTEGER PRIMARY KEY,
        key_id INTEGER NOT NULL REFERENCES keys(id),
        transaction_key TEXT NOT NULL,
        customer_id INTEGER NOT NULL REFERENCES customers(id),
        amount INTEGER NOT NULL,
        currency TEXT NOT NULL,
        product_key TEXT,
        category_key TEXT,
        origin TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        reversed_at INTEGER,
        UNIQUE (key_id, transaction_key)
    );
    CREATE INDEX transactions_by_customer ON transactions(customer_id, created_at);
    CREATE TABLE offers (
        id INTEGER PRIMARY KEY,
        key_id INTEGER NOT NULL REFERENCES keys(id),
        offer_key TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('new_customer', 'percent')),
        percent_bp INTEGER,
        amounts TEXT NOT NULL,
        months INTEGER,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        UNIQUE (key_id, offer_key)
    );
    CREATE TABLE rewards (
        id INTEGER PRIMARY KEY,
        key_id INTEGER NOT NULL REFERENCES keys(id),
        partner_key TEXT NOT NULL,
        customer_id INTEGER NOT NULL REFERENCES customers(id),
        transaction_id INTEGER NOT NULL REFERENCES transactions(id),
        offer_id INTEGER NOT NULL REFERENCES offers(id),
        amount INTEGER NOT NULL,
        currency TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('new', 'approved', 'declined', 'paid')),
        reverses INTEGER REFERENCES rewards(id),
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE INDEX rewards_by_transaction ON rewards(transaction_id);
    CREATE INDEX rewards_by_partner ON rewards(key_id, partner_key);
    CREATE TABLE webhook_settings (
        key_id INTEGER PRIMARY KEY REFERENCES keys(id),
        stripe_secret TEXT NOT NULL DEFAULT '',
        stripe_payment_event TEXT NOT NULL DEFAULT 'invoice.payment_succeeded',
        chargebee_auth TEXT NOT NULL DEFAULT '',
        recurly_auth TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE webhook_events (
        provider TEXT NOT NULL,
        event_id TEXT NOT NULL,
        key_id INTEGER NOT NULL REFERENCES keys(id),
        type TEXT NOT NULL,
        outcome TEXT NOT NULL,
        received_at INTEGER NOT NULL,
        PRIMARY KEY (provider, key_id, event_id)
    );",
    // 4: dashboard sessions (only a hash of the token is kept).
    "CREATE TABLE sessions (
        token_hash BLOB PRIMARY KEY,
        key_id INTEGER NOT NULL REFERENCES keys(id),
        csrf TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    );",
    // 5: clicks and signups per day and partner, kept by the writer, for the
    // dashboard's chart ('' is no partner); filled from the events so far.
    "CREATE TABLE daily (
        key_id INTEGER NOT NULL,
        partner_key TEXT NOT NULL,
        day INTEGER NOT NULL,
        clicks INTEGER NOT NULL DEFAULT 0,
        signups INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (key_id, partner_key, day)
    ) WITHOUT ROWID;
    CREATE INDEX daily_by_day ON daily(key_id, day);
    INSERT INTO daily (key_id, partner_key, day, clicks)
        SELECT key_id, coalesce(partner_key, ''), received_at / 86400000, count(*) FROM events
        WHERE type = 'click' GROUP BY 1, 2, 3;
    INSERT INTO daily (key_id, partner_key, day, signups)
        SELECT key_id, coalesce(partner_key, ''), created_at / 86400000, count(*) FROM customers
        WHERE event_id != '' GROUP BY 1, 2, 3
        ON CONFLICT (key_id, partner_key, day) DO UPDATE SET signups = excluded.signups;
    UPDATE customers SET updated_at = created_at WHERE updated_at = 0;",
    // 6: the lists read newest first within a key: an index that gives that
    // order, so a page is 50 rows read, not the whole key's rows sorted
    // (measured: 160 ms → see `cargo xtask bench pages`).
    "CREATE INDEX customers_newest ON customers(key_id, id);
    CREATE INDEX transactions_newest ON transactions(key_id, id);
    CREATE INDEX rewards_newest ON rewards(key_id, id);
    CREATE INDEX partners_newest ON partners(key_id, id);",
    // 7: each partner's revenue per currency, kept with every transaction and
    // reversal, so the Partners page never sums a partner's transactions.
    "CREATE TABLE partner_revenue (
        key_id INTEGER NOT NULL,
        partner_key TEXT NOT NULL,
        currency TEXT NOT NULL,
        amount INTEGER NOT NULL,
        PRIMARY KEY (key_id, partner_key, currency)
    ) WITHOUT ROWID;
    INSERT INTO partner_revenue (key_id, partner_key, currency, amount)
        SELECT t.key_id, c.partner_key, t.currency, sum(t.amount)
        FROM transactions t JOIN customers c ON c.id = t.customer_id
        WHERE c.partner_key IS NOT NULL AND t.reversed_at IS NULL GROUP BY 1, 2, 3;",
    // 8: which key's data a dashboard session shows (a live sign-in may
    // switch to its test sibling); null: the signed-in key's.
    "ALTER TABLE sessions ADD COLUMN view_key_id INTEGER REFERENCES keys(id);",
    // 9: why the snippet could not start on a merchant's page (one row per
    // key, page origin and reason; origins are the key's allowed ones, so
    // the table stays small).
    "CREATE TABLE diagnostics (
        key_id INTEGER NOT NULL REFERENCES keys(id),
        origin TEXT NOT NULL,
        reason TEXT NOT NULL,
        count INTEGER NOT NULL,
        last_at INTEGER NOT NULL,
        PRIMARY KEY (key_id, origin, reason)
    );",
    // 10: credit you can defend: the client network of each event (a
    // fingerprint only corroborates a click from the same network), per-key
    // fingerprint window and open partner sign-up, each customer's
    // confidence and review flag, and every change of a customer's partner.
    "ALTER TABLE events ADD COLUMN network TEXT;
    ALTER TABLE keys ADD COLUMN fingerprint_hours INTEGER NOT NULL DEFAULT 24;
    ALTER TABLE keys ADD COLUMN auto_partners INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE customers ADD COLUMN confidence TEXT;
    ALTER TABLE customers ADD COLUMN review TEXT;
    ALTER TABLE customers ADD COLUMN suggested_partner TEXT;
    UPDATE customers SET confidence = CASE source
        WHEN 'api' THEN 'merchant' WHEN 'xid' THEN 'high' WHEN 'server_cookie' THEN 'high'
        WHEN 'partner_key' THEN 'medium' WHEN 'fingerprint' THEN 'low' END;
    CREATE INDEX customers_in_review ON customers(key_id, id) WHERE review IS NOT NULL;
    CREATE TABLE attribution_changes (
        id INTEGER PRIMARY KEY,
        key_id INTEGER NOT NULL REFERENCES keys(id),
        customer_key TEXT NOT NULL,
        customer_id INTEGER REFERENCES customers(id) ON DELETE SET NULL,
        at INTEGER NOT NULL,
        actor TEXT NOT NULL,
        from_partner TEXT,
        to_partner TEXT,
        reason TEXT NOT NULL
    );
    CREATE INDEX attribution_changes_newest ON attribution_changes(key_id, id);",
    // 11: the row `/readyz` writes to prove the database takes writes.
    "CREATE TABLE health (id INTEGER PRIMARY KEY CHECK (id = 1), at INTEGER NOT NULL, pad BLOB);",
    // 12: test/live pairs linked explicitly (a live key's test sibling), not
    // by name. Pairs `keys create --pair` made (a test key and a live key of
    // one name created together) are kept.
    "ALTER TABLE keys ADD COLUMN pair_id INTEGER REFERENCES keys(id);
    UPDATE keys SET pair_id = (
        SELECT t.id FROM keys t
        WHERE t.live = 0 AND t.name = keys.name AND t.name != '' AND abs(t.created_at - keys.created_at) < 5000
        ORDER BY t.id LIMIT 1)
    WHERE live = 1;",
    // 13: PartnerStack's v2 resources and sync filters. Groups (every key
    // has a default one; a partnership belongs to one; an offer may be
    // scoped to one), archiving partnerships and offers, actions (a
    // customer's conversion events, which `action` offers reward: offers and
    // rewards are rebuilt for the new kind and a reward's source being an
    // action or a transaction), leads and deals, customers' `meta`,
    // transactions' `updated_at`, tombstones so a page cursor naming a
    // deleted customer keeps paging, indexes for the `min_updated` filter of
    // incremental syncs, and for emails matched without regard to case.
    "CREATE TABLE groups (
        id INTEGER PRIMARY KEY,
        key_id INTEGER NOT NULL REFERENCES keys(id),
        group_key TEXT NOT NULL,
        name TEXT NOT NULL,
        slug TEXT NOT NULL,
        is_default INTEGER NOT NULL DEFAULT 0,
        archived_at INTEGER,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        UNIQUE (key_id, group_key)
    );
    CREATE UNIQUE INDEX groups_one_default ON groups(key_id) WHERE is_default = 1;
    CREATE INDEX groups_newest ON groups(key_id, id);
    INSERT INTO groups (key_id, group_key, name, slug, is_default, created_at, updated_at)
        SELECT id, 'default', 'Default', 'default', 1, created_at, created_at FROM keys;
    ALTER TABLE partners ADD COLUMN group_id INTEGER REFERENCES groups(id);
    UPDATE partners SET group_id = (SELECT g.id FROM groups g WHERE g.key_id = partners.key_id AND g.is_default = 1);
    ALTER TABLE partners ADD COLUMN archived_at INTEGER;
    CREATE TABLE offers_v13 (
        id INTEGER PRIMARY KEY,
        key_id INTEGER NOT NULL REFERENCES keys(id),
        offer_key TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('new_customer', 'percent', 'action')),
        percent_bp INTEGER,
        amounts TEXT NOT NULL,
        months INTEGER,
        action_key TEXT,
        group_id INTEGER REFERENCES groups(id),
        archived_at INTEGER,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        UNIQUE (key_id, offer_key)
    );
    INSERT INTO offers_v13 (id, key_id, offer_key, kind, percent_bp, amounts, months, created_at, updated_at)
        SELECT id, key_id, offer_key, kind, percent_bp, amounts, months, created_at, updated_at FROM offers;
    DROP TABLE offers;
    ALTER TABLE offers_v13 RENAME TO offers;
    CREATE TABLE actions (
        id INTEGER PRIMARY KEY,
        key_id INTEGER NOT NULL REFERENCES keys(id),
        action_key TEXT NOT NULL,
        customer_id INTEGER NOT NULL REFERENCES customers(id),
        value INTEGER,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE INDEX actions_newest ON actions(key_id, id);
    CREATE INDEX actions_by_customer ON actions(customer_id);
    CREATE INDEX actions_updated ON actions(key_id, updated_at);
    CREATE TABLE rewards_v13 (
        id INTEGER PRIMARY KEY,
        key_id INTEGER NOT NULL REFERENCES keys(id),
        partner_key TEXT NOT NULL,
        customer_id INTEGER NOT NULL REFERENCES customers(id),
        transaction_id INTEGER REFERENCES transactions(id),
        action_id INTEGER REFERENCES actions(id),
        offer_id INTEGER NOT NULL REFERENCES offers(id),
        amount INTEGER NOT NULL,
        currency TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('new', 'approved', 'declined', 'paid')),
        reverses INTEGER REFERENCES rewards_v13(id),
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        CHECK ((transaction_id IS NULL) != (action_id IS NULL))
    );
    INSERT INTO rewards_v13 (id, key_id, partner_key, customer_id, transaction_id, offer_id, amount, currency,
                             status, reverses, created_at, updated_at)
        SELECT id, key_id, partner_key, customer_id, transaction_id, offer_id, amount, currency, status, reverses,
               created_at, updated_at FROM rewards;
    DROP TABLE rewards;
    ALTER TABLE rewards_v13 RENAME TO rewards;
    CREATE INDEX rewards_by_transaction ON rewards(transaction_id);
    CREATE INDEX rewards_by_action ON rewards(action_id) WHERE action_id IS NOT NULL;
    CREATE INDEX rewards_by_partner ON rewards(key_id, partner_key);
    CREATE INDEX rewards_newest ON rewards(key_id, id);
    ALTER TABLE customers ADD COLUMN meta TEXT;
    ALTER TABLE transactions ADD COLUMN updated_at INTEGER NOT NULL DEFAULT 0;
    UPDATE transactions SET updated_at = coalesce(reversed_at, created_at);
    CREATE TABLE leads (
        id INTEGER PRIMARY KEY,
        key_id INTEGER NOT NULL REFERENCES keys(id),
        lead_key TEXT NOT NULL,
        partner_key TEXT NOT NULL,
        email TEXT NOT NULL,
        name TEXT NOT NULL,
        company TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('open', 'approved', 'declined', 'converted')),
        amount INTEGER,
        external_key TEXT,
        customer_key TEXT,
        archived_at INTEGER,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        UNIQUE (key_id, lead_key)
    );
    CREATE INDEX leads_newest ON leads(key_id, id);
    CREATE INDEX leads_by_email ON leads(key_id, email COLLATE NOCASE);
    CREATE TABLE deals (
        id INTEGER PRIMARY KEY,
        key_id INTEGER NOT NULL REFERENCES keys(id),
        deal_key TEXT NOT NULL,
        partner_key TEXT NOT NULL,
        lead_key TEXT,
        account_name TEXT NOT NULL,
        contact_first_name TEXT NOT NULL,
        contact_last_name TEXT NOT NULL,
        amount INTEGER,
        currency TEXT,
        stage TEXT NOT NULL,
        close_date TEXT,
        lost_reason TEXT,
        external_key TEXT,
        archived_at INTEGER,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        UNIQUE (key_id, deal_key)
    );
    CREATE INDEX deals_newest ON deals(key_id, id);
    CREATE TABLE deleted_items (
        key_id INTEGER NOT NULL,
        tbl TEXT NOT NULL,
        item_key TEXT NOT NULL,
        row_id INTEGER NOT NULL,
        PRIMARY KEY (key_id, tbl, item_key)
    ) WITHOUT ROWID;
    CREATE INDEX customers_updated ON customers(key_id, updated_at);
    CREATE INDEX customers_by_email_nocase ON customers(key_id, email COLLATE NOCASE);
    CREATE INDEX partners_by_email_nocase ON partners(key_id, email COLLATE NOCASE);
    CREATE INDEX partners_updated ON partners(key_id, updated_at);
    CREATE INDEX transactions_updated ON transactions(key_id, updated_at);
    CREATE INDEX rewards_updated ON rewards(key_id, updated_at);",
    // 14: outgoing webhooks (see `outbox`): the merchant's endpoints, the
    // messages written with the change that caused them, one delivery per
    // (message, endpoint) and every attempt of it.
    "CREATE TABLE endpoints (
        id INTEGER PRIMARY KEY,
        key_id INTEGER NOT NULL REFERENCES keys(id),
        endpoint_key TEXT NOT NULL,
        url TEXT NOT NULL,
        events TEXT NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        secret TEXT NOT NULL,
        previous_secrets TEXT NOT NULL DEFAULT '',
        disabled_at INTEGER,
        disabled_reason TEXT,
        failing_since INTEGER,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        UNIQUE (key_id, endpoint_key)
    );
    CREATE TABLE outgoing_messages (
        id INTEGER PRIMARY KEY,
        key_id INTEGER NOT NULL REFERENCES keys(id),
        message_key TEXT NOT NULL UNIQUE,
        type TEXT NOT NULL,
        subject TEXT NOT NULL,
        body TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE INDEX outgoing_messages_by_subject ON outgoing_messages(key_id, subject, created_at);
    CREATE INDEX outgoing_messages_by_time ON outgoing_messages(created_at);
    CREATE TABLE deliveries (
        id INTEGER PRIMARY KEY,
        message_id INTEGER NOT NULL REFERENCES outgoing_messages(id) ON DELETE CASCADE,
        endpoint_id INTEGER NOT NULL REFERENCES endpoints(id) ON DELETE CASCADE,
        status TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_at INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        UNIQUE (message_id, endpoint_id)
    );
    CREATE INDEX deliveries_due ON deliveries(endpoint_id, next_at, id) WHERE status = 'pending';
    CREATE INDEX deliveries_by_endpoint ON deliveries(endpoint_id, id);
    CREATE TABLE delivery_attempts (
        id INTEGER PRIMARY KEY,
        delivery_id INTEGER NOT NULL REFERENCES deliveries(id) ON DELETE CASCADE,
        at INTEGER NOT NULL,
        status INTEGER,
        duration_ms INTEGER NOT NULL,
        response TEXT NOT NULL
    );
    CREATE INDEX delivery_attempts_by_delivery ON delivery_attempts(delivery_id, id);",
    // 15: the partner portal (see `portal`): one-time sign-in links and
    // partners' sessions, both stored as token hashes.
    "CREATE TABLE partner_links (
        token_hash BLOB PRIMARY KEY,
        key_id INTEGER NOT NULL REFERENCES keys(id),
        partner_key TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        used_at INTEGER
    );
    CREATE TABLE partner_sessions (
        token_hash BLOB PRIMARY KEY,
        key_id INTEGER NOT NULL REFERENCES keys(id),
        partner_key TEXT NOT NULL,
        csrf TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    );",
    // 16: running a program (see `program`, `mail`, `payouts`): each key's
    // program settings, partners' applications, the emails the program
    // sends (an outbox, retried), partners' payout details, payout batches
    // (a reward is in at most one; each partner's line and where it is paid
    // kept as the batch was made), and clicks per partner and sub-id.
    "CREATE TABLE programs (
        key_id INTEGER PRIMARY KEY REFERENCES keys(id),
        name TEXT NOT NULL DEFAULT '',
        merchant_email TEXT NOT NULL DEFAULT '',
        portal_url TEXT NOT NULL DEFAULT '',
        applications TEXT NOT NULL DEFAULT 'closed' CHECK (applications IN ('closed', 'review', 'auto')),
        group_key TEXT,
        emails TEXT NOT NULL DEFAULT '',
        updated_at INTEGER NOT NULL
    );
    CREATE TABLE applications (
        id INTEGER PRIMARY KEY,
        key_id INTEGER NOT NULL REFERENCES keys(id),
        email TEXT NOT NULL,
        first_name TEXT NOT NULL,
        last_name TEXT NOT NULL,
        website TEXT NOT NULL,
        promotion TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'approved', 'declined')),
        partner_key TEXT,
        created_at INTEGER NOT NULL,
        decided_at INTEGER
    );
    CREATE INDEX applications_by_status ON applications(key_id, status, id);
    CREATE INDEX applications_by_email ON applications(key_id, email COLLATE NOCASE);
    CREATE TABLE emails (
        id INTEGER PRIMARY KEY,
        key_id INTEGER NOT NULL REFERENCES keys(id),
        kind TEXT NOT NULL,
        recipient TEXT NOT NULL,
        subject TEXT NOT NULL,
        body TEXT NOT NULL,
        items TEXT NOT NULL DEFAULT '',
        item_count INTEGER NOT NULL DEFAULT 0,
        status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_at INTEGER NOT NULL,
        last_error TEXT NOT NULL DEFAULT '',
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE INDEX emails_due ON emails(next_at, id) WHERE status = 'pending';
    CREATE INDEX emails_by_time ON emails(created_at);
    CREATE INDEX emails_newest ON emails(key_id, id);
    CREATE INDEX emails_by_recipient ON emails(key_id, recipient, kind, created_at);
    CREATE TABLE payout_details (
        key_id INTEGER NOT NULL REFERENCES keys(id),
        partner_key TEXT NOT NULL,
        paypal_email TEXT NOT NULL DEFAULT '',
        wise_email TEXT NOT NULL DEFAULT '',
        account_name TEXT NOT NULL DEFAULT '',
        bank_details TEXT NOT NULL DEFAULT '',
        tax_details TEXT NOT NULL DEFAULT '',
        method TEXT NOT NULL DEFAULT '' CHECK (method IN ('', 'paypal', 'wise', 'bank')),
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (key_id, partner_key)
    );
    CREATE TABLE payouts (
        id INTEGER PRIMARY KEY,
        key_id INTEGER NOT NULL REFERENCES keys(id),
        created_at INTEGER NOT NULL,
        paid_at INTEGER,
        cancelled_at INTEGER
    );
    CREATE INDEX payouts_newest ON payouts(key_id, id);
    CREATE TABLE payout_lines (
        payout_id INTEGER NOT NULL REFERENCES payouts(id),
        partner_key TEXT NOT NULL,
        currency TEXT NOT NULL,
        amount INTEGER NOT NULL,
        method TEXT NOT NULL,
        recipient TEXT NOT NULL,
        name TEXT NOT NULL,
        bank_details TEXT NOT NULL,
        PRIMARY KEY (payout_id, partner_key, currency)
    );
    CREATE INDEX payout_lines_by_partner ON payout_lines(partner_key, payout_id);
    ALTER TABLE rewards ADD COLUMN payout_id INTEGER REFERENCES payouts(id);
    CREATE INDEX rewards_by_payout ON rewards(payout_id) WHERE payout_id IS NOT NULL;
    CREATE INDEX clicks_by_partner_xid ON events(key_id, partner_key, xid) WHERE type = 'click' AND xid IS NOT NULL;",
];

/// Applies the migrations not yet applied. Foreign keys are off while a
/// step runs (SQLite's way to rebuild a table others refer to) and checked
/// before it commits: a step that breaks one is rolled back.
pub fn migrate(conn: &mut Connection) -> Result<()> {
    let applied: usize = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    let enforced: bool = conn.pragma_query_value(None, "foreign_keys", |row| row.get(0))?;
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    let result = (|| -> Result<()> {
        for (index, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            let broken: Option<String> = tx
                .query_row("SELECT \"table\" FROM pragma_foreign_key_check LIMIT 1", [], |r| {
                    r.get(0)
                })
                .optional()?;
            if let Some(table) = broken {
                anyhow::bail!("migration {} leaves a broken foreign key in {table}", index + 1);
            }
            tx.pragma_update(None, "user_version", index + 1)?;
            tx.commit()?;
        }
        Ok(())
    })();
    conn.pragma_update(None, "foreign_keys", enforced)?;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database at `version`, as a release that stopped there made it.
    fn at_version(version: usize) -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "foreign_keys", "ON").unwrap();
        for sql in &MIGRATIONS[..version] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", version).unwrap();
        conn
    }

    #[test]
    fn rebuilding_offers_and_rewards_keeps_every_row_and_reference() {
        let mut conn = at_version(12);
        conn.execute_batch(
            "INSERT INTO keys (id, public_key, secret_hash, live, created_at) VALUES (1, 'pk', x'00', 1, 0);
             INSERT INTO customers (id, key_id, customer_key, email, name, event_id, created_at)
                 VALUES (1, 1, 'ann', 'ann@example.com', '', '', 0);
             INSERT INTO transactions (id, key_id, transaction_key, customer_id, amount, currency, origin, created_at)
                 VALUES (1, 1, 't1', 1, 1000, 'USD', 'api', 5);
             INSERT INTO offers (id, key_id, offer_key, kind, percent_bp, amounts, created_at, updated_at)
                 VALUES (1, 1, 'share', 'percent', 2000, '{}', 0, 0);
             INSERT INTO rewards (id, key_id, partner_key, customer_id, transaction_id, offer_id, amount, currency,
                                  status, created_at, updated_at)
                 VALUES (1, 1, 'alice', 1, 1, 1, 200, 'USD', 'paid', 5, 5);
             INSERT INTO rewards (id, key_id, partner_key, customer_id, transaction_id, offer_id, amount, currency,
                                  status, reverses, created_at, updated_at)
                 VALUES (2, 1, 'alice', 1, 1, 1, -200, 'USD', 'new', 1, 6, 6);",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let rows: Vec<(i64, Option<i64>, Option<i64>)> = conn
            .prepare("SELECT id, transaction_id, reverses FROM rewards ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(rows, [(1, Some(1), None), (2, Some(1), Some(1))]);
        let referred: Vec<String> = conn
            .prepare("SELECT \"table\" FROM pragma_foreign_key_list('rewards') ORDER BY \"table\"")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(
            referred,
            [
                "actions",
                "customers",
                "keys",
                "offers",
                "payouts",
                "rewards",
                "transactions"
            ]
        );
        let default_group: String = conn
            .query_row(
                "SELECT group_key FROM groups WHERE key_id = 1 AND is_default = 1",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(default_group, "default");
        let enforced: bool = conn.pragma_query_value(None, "foreign_keys", |r| r.get(0)).unwrap();
        assert!(enforced, "foreign keys are enforced again after migrating");
        let updated: i64 = conn
            .query_row("SELECT updated_at FROM transactions", [], |r| r.get(0))
            .unwrap();
        assert_eq!(updated, 5);
    }
}
