-- Increments of Mautic's content counters (emails.sent_count and the like),
-- written in the same transaction as a send's stats and applied to the
-- counters a moment later by a short transaction of their own: the counter
-- rows are the hottest rows of all (every send of one email updates its
-- row), and updating them inside every routing transaction would make all
-- sends of one email wait for each other.
CREATE TABLE IF NOT EXISTS `{prefix}sidecar_counter_deltas` (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  content_table VARCHAR(32) NOT NULL,
  content_id INT UNSIGNED NOT NULL,
  delta INT NOT NULL,
  created_at DATETIME(6) NOT NULL,
  PRIMARY KEY (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci ROW_FORMAT=DYNAMIC;
