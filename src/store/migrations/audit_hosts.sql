-- `audit verify` checks requests' events as it hashes each range of the log, and reads
-- the host events (which must be taken in order, from the start) on their own: this
-- index of them alone makes that read cost what they are, not a scan of the whole log.
CREATE INDEX audit_hosts ON audit (seq)
    WHERE action IN ('host.token_created', 'host.enrolled', 'host.renewed');
