-- Every change to who is in the in-memory gallery, in commit order: each
-- server follows this table to keep its gallery in step with the others.
-- A row names what changed, never a vector: 'template' (enrolled or deleted;
-- the follower reads the current row) or 'regular' (the user paid at
-- merchant_id). SQLite has one writer at a time, so seq order is commit
-- order.
CREATE TABLE gallery_changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('template', 'regular')),
    merchant_id TEXT,
    created_at_ms INTEGER NOT NULL
);
CREATE INDEX gallery_changes_created ON gallery_changes (created_at_ms);
