-- A node's store at schema 11 as bluezone wrote it before 617bc8f, when a --server URL's credentials were part
-- of the server's name: the tables as sqlite3 .dump printed a store that version (6529fc7) made; the rows of
-- http://keys.test are its own (an F0's upload and a node's check through http://alice:s3cret-Pa55@keys.test,
-- times moved three days back), the others written in the same form (another password of the same server,
-- a server under a path with a percent-encoded password).  Read by tests/proximity/test_store_server_credentials.py
-- (NOW = 2025-11-20 12:00 UTC).
PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE IF NOT EXISTS "daily_keys" (
   "key" BLOB,
   "rolling_start" INTEGER,
   "rolling_period" INTEGER,
   "created_at" REAL
);
CREATE TABLE IF NOT EXISTS "sightings" (
   "time" REAL,
   "rpi" BLOB,
   "aem" BLOB,
   "rssi" INTEGER,
   "tx_power" INTEGER,
   "address" TEXT
);
CREATE TABLE IF NOT EXISTS "daemon_state" (
   "name" TEXT PRIMARY KEY,
   "value" TEXT,
   "updated_at" REAL
);
CREATE TABLE IF NOT EXISTS "bluezone3_sightings" (
   "time" REAL,
   "bzid" BLOB,
   "rssi" INTEGER,
   "tx_power" INTEGER,
   "address" TEXT
);
CREATE TABLE IF NOT EXISTS "bluezone3_key" (
   "day" INTEGER PRIMARY KEY,
   "key" BLOB,
   "created_at" REAL
, "used_at" REAL);
CREATE TABLE IF NOT EXISTS "checkins" (
   "id" INTEGER PRIMARY KEY,
   "location_id" BLOB,
   "payload" BLOB,
   "description" TEXT,
   "address" TEXT,
   "start_time" REAL,
   "end_time" REAL,
   "checked_out" INTEGER,
   "source" TEXT,
   "created_at" REAL
);
INSERT INTO checkins VALUES(1,X'00112233445566778899aabbccddeeff',X'0a0b0c','Café Hoa','12 Trần Phú',1763366400.0,1763370000.0,1,'url',1763366400.0);
INSERT INTO checkins VALUES(2,X'00112233445566778899aabbccddeeff',X'0a0b0c','Café Hoa','12 Trần Phú',1763280000.0,1763283600.0,1,'url',1763280000.0);
CREATE TABLE keyserver_pins (server TEXT PRIMARY KEY, public_key TEXT NOT NULL, key_id TEXT, key_version TEXT, pinned_at REAL NOT NULL);
INSERT INTO keyserver_pins VALUES('http://alice:s3cret-Pa55@keys.test','MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE96x3rkbfFfvZlZjGYQIeddOL2CKaGeOJflJGy8QDqeJOIjXD/FIGRivMi7sdSbpLiTIEFryx3T5KsJYqcFgz2w==','bluezone','v1',1763380800.0);
CREATE TABLE keyserver_batches (server TEXT NOT NULL, name TEXT NOT NULL, keys INTEGER NOT NULL, processed_at REAL NOT NULL, PRIMARY KEY (server, name));
INSERT INTO keyserver_batches VALUES('http://alice:0ld-Pa55@keys.test','1763380800-1763078400-0c1d2e-0001.zip',98,1763208000.0);
INSERT INTO keyserver_batches VALUES('http://alice:s3cret-Pa55@keys.test','1763640000-1763164800-6a0d0d-0001.zip',110,1763380800.0);
INSERT INTO keyserver_batches VALUES('http://alice:s3cret-Pa55@keys.test','1763640000-1763251200-592425-0001.zip',100,1763380800.0);
INSERT INTO keyserver_batches VALUES('http://alice:s3cret-Pa55@keys.test','1763640000-1763337600-ee67b4-0001.zip',104,1763380800.0);
CREATE TABLE keyserver_revision_tokens (server TEXT PRIMARY KEY, token TEXT NOT NULL, saved_at REAL NOT NULL);
INSERT INTO keyserver_revision_tokens VALUES('http://alice:s3cret-Pa55@keys.test','95_GdaFLVhUXuTWQBseE2Ck6uMaLEKml-RO4XxRYTKA',1763380800.0);
INSERT INTO keyserver_revision_tokens VALUES('https://bob:hunter2%40x@keys.example.org/ministry','ministry-token',1763380800.0);
CREATE TABLE keyserver_warnings (key_hash BLOB NOT NULL, day TEXT NOT NULL, level TEXT NOT NULL, reported_at REAL NOT NULL, PRIMARY KEY (key_hash, day));
INSERT INTO keyserver_warnings VALUES(X'78b822eaeef8942e1ef3a2f5e77b6e415ada897ddee3a66295a3adefcb2af0f8','2025-11-18','F1',1763380800.0);
CREATE TABLE keyserver_withdrawn (server TEXT NOT NULL, key_hash BLOB NOT NULL, day TEXT NOT NULL, PRIMARY KEY (server, key_hash, day)) WITHOUT ROWID;
INSERT INTO keyserver_withdrawn VALUES('https://bob:hunter2%40x@keys.example.org/ministry',X'0102030405060708090a0b0c0d0e0f100102030405060708090a0b0c0d0e0f10','2025-11-17');
CREATE TABLE keyserver_rejected (server TEXT NOT NULL, public_key TEXT NOT NULL, name TEXT NOT NULL, reason TEXT NOT NULL, rejected_at REAL NOT NULL, PRIMARY KEY (server, public_key, name));
INSERT INTO keyserver_rejected VALUES('http://alice:0ld-Pa55@keys.test','MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE96x3rkbfFfvZlZjGYQIeddOL2CKaGeOJflJGy8QDqeJOIjXD/FIGRivMi7sdSbpLiTIEFryx3T5KsJYqcFgz2w==','1763380800-1763078400-bad000-0001.zip','does not verify',1763208000.0);
CREATE TABLE checkin_uploads (mac BLOB PRIMARY KEY, checkin_id INTEGER NOT NULL, server TEXT NOT NULL, end_time REAL NOT NULL, uploaded_at REAL NOT NULL);
INSERT INTO checkin_uploads VALUES(X'a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0',1,'https://bob:hunter2%40x@keys.example.org/ministry',1763370000.0,1763380800.0);
CREATE TABLE venue_reports_told (mac BLOB PRIMARY KEY, told_at REAL NOT NULL);
CREATE TABLE checkin_uploads_unrecorded (checkin_id INTEGER NOT NULL, server TEXT NOT NULL, uploaded_at REAL NOT NULL, PRIMARY KEY (checkin_id, server));
INSERT INTO checkin_uploads_unrecorded VALUES(2,'https://bob:hunter2%40x@keys.example.org/ministry',1763294400.0);
CREATE TABLE IF NOT EXISTS "keyserver_exposures" (server TEXT NOT NULL, key_hash BLOB NOT NULL, day TEXT NOT NULL, start_time REAL NOT NULL, end_time REAL NOT NULL, exposure TEXT NOT NULL, reported_at REAL NOT NULL, PRIMARY KEY (server, key_hash, day, start_time, end_time));
INSERT INTO keyserver_exposures VALUES('http://alice:s3cret-Pa55@keys.test',X'78b822eaeef8942e1ef3a2f5e77b6e415ada897ddee3a66295a3adefcb2af0f8','2025-11-18',1763460005.0,1763461775.0,'{"date": "2025-11-18", "start": "2025-11-18T10:00:05+00:00", "end": "2025-11-18T10:29:35+00:00", "duration_minutes": 30.0, "weighted_minutes": 26.956, "minutes_by_bucket": {"within_2m": 30.0, "beyond_2m": 0.0}, "closest_attenuation_db": 52, "typical_attenuation_db": 52.0, "distance_band": "< 2 m", "close_contact": true, "scorer": "bluezone", "sightings": 60, "key_index": 369, "transmission_risk": 0, "tx_power_estimated": false, "protocol": "gaen", "report_type": 2, "contact_of": "F0", "level": "F1"}',1763380800.0);
INSERT INTO keyserver_exposures VALUES('http://alice:s3cret-Pa55@keys.test#venues',X'00112233445566778899aabbccddeeff0000000000000001','2025-11-17',1763370000.0,1763373600.0,'{"date": "2025-11-17", "checkin_id": 1, "overlap_start": 1763370000.0, "overlap_end": 1763373600.0, "cases": 1}',1763380800.0);
CREATE TABLE keyserver_given_keys (server TEXT PRIMARY KEY, public_key TEXT NOT NULL, key_id TEXT, key_version TEXT, given_at REAL NOT NULL);
INSERT INTO keyserver_given_keys VALUES('https://bob:hunter2%40x@keys.example.org/ministry','MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEministryGivenKeyNotYetConfirmedByAnyFile00000000000000000000000000000==','ministry','v2',1763380800.0);
CREATE UNIQUE INDEX "idx_daily_keys_key"
    ON "daily_keys" ("key");
CREATE INDEX "idx_daily_keys_rolling_start"
    ON "daily_keys" ("rolling_start");
CREATE INDEX "idx_sightings_time"
    ON "sightings" ("time");
CREATE INDEX "idx_bluezone3_sightings_time"
    ON "bluezone3_sightings" ("time");
CREATE INDEX "idx_checkins_end_time"
    ON "checkins" ("end_time");
CREATE INDEX sightings_by_rpi ON sightings (rpi, time) WHERE length(rpi) = 16 AND time < 1e300;
CREATE INDEX sightings_unusable ON sightings (time) WHERE (length(rpi) IS NOT 16 OR length(aem) IS NOT 4 OR typeof(rssi) != 'integer' OR typeof(tx_power) NOT IN ('integer', 'null'));
PRAGMA user_version=11;
COMMIT;
-- A token the earlier version's 14-day purge deleted: its bytes stay in the file's free space (where SQLite
-- is built without SECURE_DELETE, or the row was deleted by such a build).
INSERT INTO keyserver_revision_tokens VALUES('https://carol:purged-Pa55@old.example','purged-token',1762000000.0);
DELETE FROM keyserver_revision_tokens WHERE server = 'https://carol:purged-Pa55@old.example';
