"""The DuckDB schema as recorded migrations: each applied once, in a transaction, by name.
Append new migrations; never edit one that has shipped."""

from __future__ import annotations

from collections.abc import Callable

import duckdb

Migration = tuple[str, Callable[[duckdb.DuckDBPyConnection], None]]


def _001_initial(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        """
        CREATE TABLE outlets (
            outlet_id   VARCHAR PRIMARY KEY,
            name        VARCHAR NOT NULL,
            country     VARCHAR,
            kind        VARCHAR,
            homepage    VARCHAR
        );
        CREATE TABLE feeds (
            feed_url             VARCHAR PRIMARY KEY,
            outlet_id            VARCHAR NOT NULL,
            etag                 VARCHAR,
            last_modified        VARCHAR,
            last_polled_at       TIMESTAMPTZ,
            last_status          VARCHAR,      -- ok | not-modified | error
            last_error           VARCHAR,
            consecutive_failures INTEGER NOT NULL DEFAULT 0,
            last_entry_count     INTEGER
        );
        CREATE TABLE runs (
            run_id             VARCHAR PRIMARY KEY,
            started_at         TIMESTAMPTZ NOT NULL,
            finished_at        TIMESTAMPTZ,
            as_of              TIMESTAMPTZ NOT NULL,
            status             VARCHAR NOT NULL,  -- running | completed | failed
            outlets_file       VARCHAR,
            feeds_polled       INTEGER,
            feeds_not_modified INTEGER,
            feeds_failed       INTEGER,
            entries_seen       INTEGER,
            articles_new       INTEGER,
            articles_failed    INTEGER,
            clusters_new       INTEGER,
            clusters_joined    INTEGER,
            clusters_merged    INTEGER,
            error              VARCHAR
        );
        CREATE TABLE fetch_log (
            run_id      VARCHAR NOT NULL,
            fetched_at  TIMESTAMPTZ NOT NULL,
            kind        VARCHAR NOT NULL,   -- feed | article
            url         VARCHAR NOT NULL,
            final_url   VARCHAR,
            outlet_id   VARCHAR,
            status_code INTEGER,
            outcome     VARCHAR NOT NULL,   -- ok | not-modified | salvaged | fallback | error
            error_kind  VARCHAR,            -- transient | terminal
            error       VARCHAR,
            attempts    INTEGER,
            elapsed_ms  DOUBLE,
            bytes       BIGINT
        );
        CREATE TABLE articles (
            article_id    BIGINT PRIMARY KEY,   -- from the canonical URL
            canonical_url VARCHAR NOT NULL UNIQUE,
            url           VARCHAR NOT NULL,     -- the link as the feed gave it
            outlet_id     VARCHAR NOT NULL,
            feed_url      VARCHAR,
            title         VARCHAR,
            author        VARCHAR,
            sitename      VARCHAR,
            language      VARCHAR,
            published_at  TIMESTAMPTZ,          -- from the feed, else the page
            first_seen_at TIMESTAMPTZ NOT NULL, -- when narratrace first saw it
            text          VARCHAR NOT NULL,
            text_source   VARCHAR NOT NULL,     -- page | feed
            content_hash  VARCHAR NOT NULL,     -- sha1 of the normalised text
            word_count    INTEGER NOT NULL,
            run_id        VARCHAR NOT NULL
        );
        CREATE TABLE detection_params (
            param_set_id VARCHAR PRIMARY KEY,
            params       JSON NOT NULL,
            created_at   TIMESTAMPTZ NOT NULL
        );
        CREATE TABLE signatures (
            article_id    BIGINT PRIMARY KEY,
            param_set_id  VARCHAR NOT NULL,
            shingle_count INTEGER NOT NULL,
            passage_count INTEGER NOT NULL,
            minhash       UINTEGER[128] NOT NULL
        );
        -- LSH bands of the whole text (passage_no 0) and of each passage, matched with a join
        CREATE TABLE lsh_bands (
            article_id BIGINT NOT NULL,
            passage_no SMALLINT NOT NULL,
            band       UTINYINT NOT NULL,
            band_hash  UBIGINT NOT NULL
        );
        -- which short paragraphs each outlet repeats: the outlet's site chrome
        CREATE TABLE outlet_paragraphs (
            outlet_id     VARCHAR NOT NULL,
            paragraph_key BIGINT NOT NULL,
            article_id    BIGINT NOT NULL,
            PRIMARY KEY (outlet_id, paragraph_key, article_id)
        );
        CREATE TABLE clusters (
            cluster_id         VARCHAR PRIMARY KEY,
            founder_article_id BIGINT NOT NULL,
            created_at         TIMESTAMPTZ NOT NULL,
            status             VARCHAR NOT NULL,   -- active | merged
            merged_into        VARCHAR,
            run_id             VARCHAR NOT NULL
        );
        CREATE TABLE cluster_members (
            article_id         BIGINT PRIMARY KEY,
            cluster_id         VARCHAR NOT NULL,
            matched_article_id BIGINT,            -- NULL for the founder
            match_kind         VARCHAR,           -- copy | passage
            similarity         DOUBLE,            -- Jaccard of word shingles
            containment        DOUBLE,
            matched_passage    VARCHAR,
            joined_at          TIMESTAMPTZ NOT NULL,
            run_id             VARCHAR NOT NULL
        );
        -- every verified match, including those that did not decide membership
        CREATE TABLE article_matches (
            article_id       BIGINT NOT NULL,
            other_article_id BIGINT NOT NULL,
            match_kind       VARCHAR NOT NULL,
            similarity       DOUBLE NOT NULL,
            containment      DOUBLE NOT NULL,
            shared_shingles  INTEGER NOT NULL,
            run_shingles     INTEGER NOT NULL,
            matched_passage  VARCHAR,
            PRIMARY KEY (article_id, other_article_id)
        );
        CREATE TABLE cluster_merges (
            absorbed_cluster_id VARCHAR NOT NULL,
            survivor_cluster_id VARCHAR NOT NULL,
            via_article_id      BIGINT NOT NULL,
            merged_at           TIMESTAMPTZ NOT NULL,
            run_id              VARCHAR NOT NULL
        );
        """
    )


def _002_views(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        """
        CREATE VIEW article_clusters AS
        SELECT a.article_id, a.canonical_url AS url, o.name AS outlet, a.title,
               a.published_at, a.first_seen_at, m.cluster_id
        FROM articles a
        JOIN outlets o USING (outlet_id)
        LEFT JOIN cluster_members m USING (article_id);

        CREATE VIEW cluster_summary AS
        WITH members AS (
            SELECT m.cluster_id, a.article_id, a.title, a.first_seen_at, a.published_at,
                   o.name AS outlet,
                   row_number() OVER (PARTITION BY m.cluster_id
                                      ORDER BY a.first_seen_at, a.published_at NULLS LAST,
                                               a.article_id) AS seen_rank
            FROM cluster_members m
            JOIN articles a USING (article_id)
            JOIN outlets o ON o.outlet_id = a.outlet_id
        )
        SELECT cluster_id,
               max(CASE WHEN seen_rank = 1 THEN title END) AS label,
               min(first_seen_at) AS first_seen_at,
               max(first_seen_at) AS last_seen_at,
               max(CASE WHEN seen_rank = 1 THEN outlet END) AS origin_outlet,
               count(*) AS article_count,
               count(DISTINCT outlet) AS outlet_count
        FROM members
        GROUP BY cluster_id;
        """
    )


# narratives.variants.WIRE_PATTERN as it was when this migration shipped, with its flags
_WIRE_RE2_003 = (
    r"(?im)\((?:with inputs from )?(?:agencies|agency|pti|ani|ians|reuters|afp|ap|app|ips|"
    r"[a-z ]*(?:wire|press|news) (?:service|agency))\)"
    r"|^\s*[—–-]\s*(?-i:[A-Z]{2,5})\s*$"
    r"|published from a (?:wire )?agency feed"
    r"|\b(?:reuters|afp|associated press|press trust of india)\s*$"
)


def _003_syndication(con: duckdb.DuckDBPyConnection) -> None:
    """Wire credits per article and per cluster: one wire story on many sites is real spread,
    and the clusters it forms are marked as syndicated."""
    pattern = _WIRE_RE2_003.replace("'", "''")
    con.execute(
        f"""
        CREATE VIEW article_wire_credit AS
        SELECT article_id, regexp_matches(text, '{pattern}') AS wire_credit
        FROM articles;

        CREATE VIEW cluster_syndication AS
        SELECT m.cluster_id,
               count(*) FILTER (WHERE w.wire_credit) AS wire_members,
               count(*) AS members,
               bool_or(w.wire_credit) AS syndicated
        FROM cluster_members m
        JOIN article_wire_credit w USING (article_id)
        GROUP BY m.cluster_id;
        """
    )


# Tables that grow with every article, as they were in 001 but without PRIMARY KEY / UNIQUE:
# DuckDB keeps an ART index per key in memory, and an insert of new random keys loads nearly
# all of it (at 1M articles: 0.5 GiB for signatures and outlet_paragraphs alone, past the
# store's memory cap). Store inserts into them skip rows whose key is already there (an anti
# join), which is what ON CONFLICT DO NOTHING did.
_UNKEYED_004 = {
    "articles": """
        article_id    BIGINT NOT NULL,
        canonical_url VARCHAR NOT NULL,
        url           VARCHAR NOT NULL,
        outlet_id     VARCHAR NOT NULL,
        feed_url      VARCHAR,
        title         VARCHAR,
        author        VARCHAR,
        sitename      VARCHAR,
        language      VARCHAR,
        published_at  TIMESTAMPTZ,
        first_seen_at TIMESTAMPTZ NOT NULL,
        text          VARCHAR NOT NULL,
        text_source   VARCHAR NOT NULL,
        content_hash  VARCHAR NOT NULL,
        word_count    INTEGER NOT NULL,
        run_id        VARCHAR NOT NULL""",
    "signatures": """
        article_id    BIGINT NOT NULL,
        param_set_id  VARCHAR NOT NULL,
        shingle_count INTEGER NOT NULL,
        passage_count INTEGER NOT NULL,
        minhash       UINTEGER[128] NOT NULL""",
    "outlet_paragraphs": """
        outlet_id     VARCHAR NOT NULL,
        paragraph_key BIGINT NOT NULL,
        article_id    BIGINT NOT NULL""",
    "clusters": """
        cluster_id         VARCHAR NOT NULL,
        founder_article_id BIGINT NOT NULL,
        created_at         TIMESTAMPTZ NOT NULL,
        status             VARCHAR NOT NULL,
        merged_into        VARCHAR,
        run_id             VARCHAR NOT NULL""",
    "cluster_members": """
        article_id         BIGINT NOT NULL,
        cluster_id         VARCHAR NOT NULL,
        matched_article_id BIGINT,
        match_kind         VARCHAR,
        similarity         DOUBLE,
        containment        DOUBLE,
        matched_passage    VARCHAR,
        joined_at          TIMESTAMPTZ NOT NULL,
        run_id             VARCHAR NOT NULL""",
    "article_matches": """
        article_id       BIGINT NOT NULL,
        other_article_id BIGINT NOT NULL,
        match_kind       VARCHAR NOT NULL,
        similarity       DOUBLE NOT NULL,
        containment      DOUBLE NOT NULL,
        shared_shingles  INTEGER NOT NULL,
        run_shingles     INTEGER NOT NULL,
        matched_passage  VARCHAR""",
}


def _004_unkeyed_growing_tables(con: duckdb.DuckDBPyConnection) -> None:
    for table, columns in _UNKEYED_004.items():
        con.execute(f"CREATE TABLE {table}__004 ({columns})")
        con.execute(f"INSERT INTO {table}__004 SELECT * FROM {table}")
        con.execute(f"DROP TABLE {table}")
        con.execute(f"ALTER TABLE {table}__004 RENAME TO {table}")


def _005_entries(con: duckdb.DuckDBPyConnection) -> None:
    """Every feed entry recorded when seen (pages are fetched from this record and retried on
    later cycles), per-feed poll schedule and backoff, per-host Retry-After, and the run
    counts that go with them. Entries of stored articles are recorded as stored; the feeds'
    validators are cleared so that the next cycle reads every feed in full once and records
    the entries an earlier version saw but never stored."""
    con.execute(
        """
        CREATE TABLE entries (
            entry_id        BIGINT NOT NULL,      -- from the canonical URL, as article_id
            canonical_url   VARCHAR NOT NULL,
            url             VARCHAR NOT NULL,     -- the link as the feed gave it
            outlet_id       VARCHAR NOT NULL,
            feed_url        VARCHAR,              -- the feed that offered it first
            title           VARCHAR,
            summary         VARCHAR,              -- the feed's text (plain); NULL: not recorded
            content         VARCHAR,
            author          VARCHAR,
            published_at    TIMESTAMPTZ,
            first_seen_at   TIMESTAMPTZ NOT NULL,
            status          VARCHAR NOT NULL,     -- pending | stored | feed-only | failed
            reason          VARCHAR,              -- why feed-only or failed
            attempts        INTEGER NOT NULL,     -- cycles that fetched its page
            next_attempt_at TIMESTAMPTZ,          -- pending: not fetched before this
            last_attempt_at TIMESTAMPTZ,
            last_error      VARCHAR,
            last_error_kind VARCHAR,              -- transient | terminal
            article_id      BIGINT                -- once stored
        );
        INSERT INTO entries
        SELECT article_id, canonical_url, url, outlet_id, feed_url, title, NULL,
               NULL, author, published_at, first_seen_at, 'stored', NULL, 1, NULL,
               first_seen_at, NULL, NULL, article_id
        FROM articles;

        CREATE TABLE host_backoff (
            host        VARCHAR PRIMARY KEY,
            until       TIMESTAMPTZ NOT NULL,     -- no request to the host before this
            retry_after DOUBLE,                   -- seconds the host asked for
            status_code INTEGER,
            url         VARCHAR,                  -- the request answered so
            recorded_at TIMESTAMPTZ NOT NULL
        );

        ALTER TABLE feeds ADD COLUMN next_poll_at TIMESTAMPTZ;
        ALTER TABLE feeds ADD COLUMN backoff_until TIMESTAMPTZ;
        UPDATE feeds SET etag = NULL, last_modified = NULL;

        ALTER TABLE fetch_log ADD COLUMN retry_after DOUBLE;

        ALTER TABLE runs ADD COLUMN feeds_skipped INTEGER;
        ALTER TABLE runs ADD COLUMN entries_new INTEGER;
        ALTER TABLE runs ADD COLUMN entries_pending INTEGER;
        ALTER TABLE runs ADD COLUMN articles_feed_only INTEGER;
        ALTER TABLE runs ADD COLUMN budget_exhausted BOOLEAN;
        """
    )


def _006_publications(con: duckdb.DuckDBPyConnection) -> None:
    """Bookkeeping of the published catalog (store.publish): each publication, the Parquet
    files written for it, and how far each large table is published."""
    con.execute(
        """
        CREATE TABLE publications (
            seq          BIGINT PRIMARY KEY,
            published_at TIMESTAMPTZ NOT NULL,
            as_of        TIMESTAMPTZ NOT NULL,
            catalog      VARCHAR NOT NULL     -- file name in the catalogs folder
        );
        CREATE TABLE published_files (
            path           VARCHAR PRIMARY KEY,  -- relative to the published folder
            table_name     VARCHAR NOT NULL,
            day            DATE NOT NULL,
            rows           BIGINT NOT NULL,
            written_seq    BIGINT NOT NULL,
            superseded_seq BIGINT               -- merged into a day file, or republished
        );
        CREATE TABLE publish_marks (
            table_name VARCHAR PRIMARY KEY,
            next_rowid BIGINT NOT NULL,          -- rows below this row id are published
            rows       BIGINT NOT NULL           -- how many rows that is
        );
        -- entries change (status, attempts): each insert and update takes the next version,
        -- and a publication carries the versions it has not published yet
        CREATE SEQUENCE entries_version;
        ALTER TABLE entries ADD COLUMN updated_seq BIGINT DEFAULT nextval('entries_version');
        """
    )


def _007_band_keys(con: duckdb.DuckDBPyConnection) -> None:
    """LSH keys as one table the candidate search semi-joins (`band_keys`: one row per distinct
    key of an article, the band number mixed into the key), replacing `lsh_bands` and the
    band index beside the database; stored MinHash arrays dropped (they are recomputed from
    the text when needed). Articles signed before keep their signatures row with the old
    `param_set_id` and have no keys until `narratrace reprocess` signs them again."""
    con.execute(
        """
        DROP TABLE lsh_bands;
        CREATE TABLE band_keys (
            key        UBIGINT NOT NULL,
            article_id BIGINT NOT NULL
        );
        ALTER TABLE signatures DROP COLUMN minhash;
        """
    )


def _008_batches(con: duckdb.DuckDBPyConnection) -> None:
    """Batches of pages loaded from the workers, by id: a batch delivered again (its worker
    died after finishing it, or the scheduler ran it twice) is recognised and changes
    nothing."""
    con.execute(
        """
        CREATE TABLE batches (
            batch_id   VARCHAR PRIMARY KEY,   -- from the run and the entries it carries
            run_id     VARCHAR NOT NULL,
            worker     VARCHAR,               -- host:pid of the process that did it
            pages      INTEGER NOT NULL,
            articles   INTEGER NOT NULL,      -- articles it added
            loaded_at  TIMESTAMPTZ NOT NULL
        );
        """
    )


def _009_articles_text_zstd(con: duckdb.DuckDBPyConnection) -> None:
    """Article texts compressed with zstd (`USING COMPRESSION zstd`), not DuckDB's default
    dictionary + FSST, which keeps about half of a news text's bytes: the texts are most of
    the database. The table is copied once into its new definition (DuckDB cannot change a
    column's compression in place); its columns and rows are as before."""
    columns = _UNKEYED_004["articles"].replace(
        "text          VARCHAR NOT NULL", "text          VARCHAR USING COMPRESSION zstd NOT NULL"
    )
    con.execute(f"CREATE TABLE articles__009 ({columns})")
    con.execute("INSERT INTO articles__009 SELECT * FROM articles")
    con.execute("DROP TABLE articles")
    con.execute("ALTER TABLE articles__009 RENAME TO articles")


def _010_shards(con: duckdb.DuckDBPyConnection) -> None:
    """A store that gathers the runs of other stores (shards, `flows.gather`): each shard run
    gathered, by id, so a run gathered again changes nothing; and what kind of run a `runs` row
    is (a cycle that polled feeds, or a gathering)."""
    con.execute(
        """
        ALTER TABLE runs ADD COLUMN kind VARCHAR DEFAULT 'cycle';  -- cycle | gather
        CREATE TABLE shard_runs (
            run_id      VARCHAR PRIMARY KEY,   -- the shard's run (also a row of runs)
            shard       VARCHAR NOT NULL,      -- the shard's database, as gathered from
            articles    INTEGER NOT NULL,      -- articles it added here
            gathered_at TIMESTAMPTZ NOT NULL,
            gather_run  VARCHAR NOT NULL       -- the gathering run that took it in
        );
        """
    )


MIGRATIONS: list[Migration] = [
    ("001_initial", _001_initial),
    ("002_views", _002_views),
    ("003_syndication", _003_syndication),
    ("004_unkeyed_growing_tables", _004_unkeyed_growing_tables),
    ("005_entries", _005_entries),
    ("006_publications", _006_publications),
    ("007_band_keys", _007_band_keys),
    ("008_batches", _008_batches),
    ("009_articles_text_zstd", _009_articles_text_zstd),
    ("010_shards", _010_shards),
]
