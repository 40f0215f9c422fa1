-- The SHA-256 (hex) of the recorded policy's text, read by every write transaction under
-- the write lock: a replica whose policy is not the newest recorded one refuses to write
-- (`store/pg/txn.rs`). Filled for the policy recorded before.
ALTER TABLE meta ADD COLUMN policy_digest TEXT;
UPDATE meta SET policy_digest = encode(sha256(convert_to(policy, 'UTF8')), 'hex')
    WHERE policy IS NOT NULL;
