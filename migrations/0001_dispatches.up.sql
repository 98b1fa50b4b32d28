-- The sidecar's own tables. {prefix} is Mautic's db_table_prefix.
-- Each dispatch is one call of Mautic's "Send a webhook" action for one contact.
CREATE TABLE IF NOT EXISTS `{prefix}sidecar_dispatches` (
  id BIGINT UNSIGNED NOT NULL,
  state VARCHAR(16) NOT NULL,
  contact_id BIGINT UNSIGNED NOT NULL,
  message_id INT UNSIGNED NOT NULL,
  campaign_id INT UNSIGNED NULL,
  event_id INT UNSIGNED NULL,
  idempotency_key VARCHAR(191) NULL,
  channel VARCHAR(191) NULL,
  channel_id INT NULL,
  queue_id BIGINT UNSIGNED NULL,
  lease_owner BINARY(16) NULL,
  attempts INT UNSIGNED NOT NULL,
  trace LONGTEXT NOT NULL,
  progress LONGTEXT NULL,
  run_at DATETIME(6) NOT NULL,
  created_at DATETIME(6) NOT NULL,
  updated_at DATETIME(6) NOT NULL,
  PRIMARY KEY (id),
  KEY `{prefix}sidecar_dispatch_claim` (state, run_at),
  KEY `{prefix}sidecar_dispatch_contact` (contact_id),
  KEY `{prefix}sidecar_dispatch_updated` (updated_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci ROW_FORMAT=DYNAMIC;

-- Duplicate detection (DESIGN.md section 5): one row per idempotency key or
-- (campaign, event, message, contact) tuple, sha256 of the key text.
CREATE TABLE IF NOT EXISTS `{prefix}sidecar_dispatch_keys` (
  dedup_key BINARY(32) NOT NULL,
  dispatch_id BIGINT UNSIGNED NOT NULL,
  created_at DATETIME(6) NOT NULL,
  PRIMARY KEY (dedup_key),
  KEY `{prefix}sidecar_dispatch_key_created` (created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci ROW_FORMAT=DYNAMIC;

-- Id blocks handed to processes (hi/lo), so intake can insert many
-- dispatches in one statement and still know each id, on MySQL and MariaDB.
CREATE TABLE IF NOT EXISTS `{prefix}sidecar_sequences` (
  name VARCHAR(64) NOT NULL,
  next_id BIGINT UNSIGNED NOT NULL,
  PRIMARY KEY (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci ROW_FORMAT=DYNAMIC;

INSERT IGNORE INTO `{prefix}sidecar_sequences` (name, next_id) VALUES ('dispatch', 1);

-- One row per contact ever routed: a lease on it (owner, until) serializes
-- all routing of that contact across workers and replicas.
CREATE TABLE IF NOT EXISTS `{prefix}sidecar_contact_locks` (
  contact_id BIGINT UNSIGNED NOT NULL,
  owner BINARY(16) NULL,
  until DATETIME(6) NULL,
  PRIMARY KEY (contact_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci ROW_FORMAT=DYNAMIC;

-- Leases on Mautic's message_queue rows being processed (Mautic's tables
-- are never altered, so the lease lives here).
CREATE TABLE IF NOT EXISTS `{prefix}sidecar_queue_leases` (
  queue_id BIGINT UNSIGNED NOT NULL,
  owner BINARY(16) NOT NULL,
  until DATETIME(6) NOT NULL,
  PRIMARY KEY (queue_id),
  KEY `{prefix}sidecar_queue_lease_until` (until)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci ROW_FORMAT=DYNAMIC;

-- Sends on custom (webhook) channels, which have no Mautic stats table; the
-- frequency rules of such a channel count these rows.
CREATE TABLE IF NOT EXISTS `{prefix}sidecar_sends` (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  contact_id BIGINT UNSIGNED NOT NULL,
  channel VARCHAR(191) NOT NULL,
  channel_id INT NULL,
  dispatch_id BIGINT UNSIGNED NULL,
  queue_id BIGINT UNSIGNED NULL,
  date_sent DATETIME NOT NULL,
  PRIMARY KEY (id),
  KEY `{prefix}sidecar_send_contact` (contact_id, channel, date_sent)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci ROW_FORMAT=DYNAMIC;
