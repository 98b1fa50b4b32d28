-- Mautic 5.x tables that the sidecar reads or writes, for tests and the demo.
--
-- Written from mautic-reference.md (section 14 "Errata" wins) and checked
-- against the entities' Doctrine metadata of Mautic 5.x. Not a dump of a
-- Mautic database: tables are limited to what the sidecar touches, and
-- foreign keys to tables that are not here (lead_lists, stages, forms,
-- pages, assets, roles) are left out while their columns and indexes stay.
--
-- Rules kept everywhere, because the sidecar must behave as on a real install:
--   * {prefix} is Mautic's db_table_prefix. It goes in front of every table,
--     index and constraint name (Mautic prefixes index names too).
--   * No database DEFAULT on a NOT NULL column (Mautic's PHP fills defaults,
--     strict mode rejects an INSERT that omits one). The one exception is
--     campaigns.version DEFAULT 1, as in Mautic.
--   * string = VARCHAR(191) unless Mautic gives a length, text = LONGTEXT,
--     array = LONGTEXT COMMENT '(DC2Type:array)' holding PHP serialize()
--     output, json = JSON, boolean = TINYINT(1), datetime = DATETIME in UTC.
--   * Generated columns are VIRTUAL and must never be written.
--   * Index names are Mautic's where Mautic names them. Indexes that only
--     back a foreign key (Doctrine gives them hashed names) are called
--     IDX_<table>_<column>, constraints FK_<table>_<column>, abbreviated so
--     that they stay short.
--
-- The loader splits statements on lines that end with a semicolon, so a
-- statement never has one at the end of an inner line and comments have none.

-- users: only the columns the sidecar may read (owner as mailer, owner
-- fields). role_id is left out because roles are not modelled here.
CREATE TABLE `{prefix}users` (
  id INT UNSIGNED AUTO_INCREMENT NOT NULL,
  is_published TINYINT(1) NOT NULL,
  date_added DATETIME DEFAULT NULL,
  created_by INT DEFAULT NULL,
  created_by_user VARCHAR(191) DEFAULT NULL,
  date_modified DATETIME DEFAULT NULL,
  modified_by INT DEFAULT NULL,
  modified_by_user VARCHAR(191) DEFAULT NULL,
  checked_out DATETIME DEFAULT NULL,
  checked_out_by INT DEFAULT NULL,
  checked_out_by_user VARCHAR(191) DEFAULT NULL,
  username VARCHAR(191) NOT NULL,
  password VARCHAR(64) NOT NULL,
  first_name VARCHAR(191) NOT NULL,
  last_name VARCHAR(191) NOT NULL,
  email VARCHAR(191) NOT NULL,
  position VARCHAR(191) DEFAULT NULL,
  timezone VARCHAR(191) DEFAULT NULL,
  locale VARCHAR(191) DEFAULT NULL,
  last_login DATETIME DEFAULT NULL,
  last_active DATETIME DEFAULT NULL,
  preferences LONGTEXT DEFAULT NULL COMMENT '(DC2Type:array)',
  signature LONGTEXT DEFAULT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY `{prefix}UNIQ_users_username` (username),
  UNIQUE KEY `{prefix}UNIQ_users_email` (email)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci ROW_FORMAT=DYNAMIC;

CREATE TABLE `{prefix}categories` (
  id INT UNSIGNED AUTO_INCREMENT NOT NULL,
  is_published TINYINT(1) NOT NULL,
  date_added DATETIME DEFAULT NULL,
  created_by INT DEFAULT NULL,
  created_by_user VARCHAR(191) DEFAULT NULL,
  date_modified DATETIME DEFAULT NULL,
  modified_by INT DEFAULT NULL,
  modified_by_user VARCHAR(191) DEFAULT NULL,
  checked_out DATETIME DEFAULT NULL,
  checked_out_by INT DEFAULT NULL,
  checked_out_by_user VARCHAR(191) DEFAULT NULL,
  title VARCHAR(191) NOT NULL,
  description LONGTEXT DEFAULT NULL,
  alias VARCHAR(191) NOT NULL,
  color VARCHAR(7) DEFAULT NULL,
  bundle VARCHAR(50) NOT NULL,
  PRIMARY KEY (id),
  KEY `{prefix}category_alias_search` (alias)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci ROW_FORMAT=DYNAMIC;

CREATE TABLE `{prefix}ip_addresses` (
  id INT UNSIGNED AUTO_INCREMENT NOT NULL,
  ip_address VARCHAR(45) NOT NULL,
  ip_details LONGTEXT DEFAULT NULL COMMENT '(DC2Type:array)',
  PRIMARY KEY (id),
  KEY `{prefix}ip_search` (ip_address)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci ROW_FORMAT=DYNAMIC;

-- leads: the entity's fixed columns, then the core contact fields that the
-- installer adds (each with its <alias>_search index), then the generated
-- email domain. points is a fixed entity column: INT NOT NULL.
CREATE TABLE `{prefix}leads` (
  id BIGINT UNSIGNED AUTO_INCREMENT NOT NULL,
  owner_id INT UNSIGNED DEFAULT NULL,
  stage_id INT UNSIGNED DEFAULT NULL,
  is_published TINYINT(1) NOT NULL,
  date_added DATETIME DEFAULT NULL,
  created_by INT DEFAULT NULL,
  created_by_user VARCHAR(191) DEFAULT NULL,
  date_modified DATETIME DEFAULT NULL,
  modified_by INT DEFAULT NULL,
  modified_by_user VARCHAR(191) DEFAULT NULL,
  checked_out DATETIME DEFAULT NULL,
  checked_out_by INT DEFAULT NULL,
  checked_out_by_user VARCHAR(191) DEFAULT NULL,
  points INT NOT NULL,
  last_active DATETIME DEFAULT NULL,
  internal LONGTEXT DEFAULT NULL COMMENT '(DC2Type:array)',
  social_cache LONGTEXT DEFAULT NULL COMMENT '(DC2Type:array)',
  date_identified DATETIME DEFAULT NULL,
  preferred_profile_image VARCHAR(191) DEFAULT NULL,
  title VARCHAR(191) DEFAULT NULL,
  firstname VARCHAR(191) DEFAULT NULL,
  lastname VARCHAR(191) DEFAULT NULL,
  company VARCHAR(191) DEFAULT NULL,
  position VARCHAR(191) DEFAULT NULL,
  email VARCHAR(191) DEFAULT NULL,
  phone VARCHAR(191) DEFAULT NULL,
  mobile VARCHAR(191) DEFAULT NULL,
  address1 VARCHAR(191) DEFAULT NULL,
  address2 VARCHAR(191) DEFAULT NULL,
  city VARCHAR(191) DEFAULT NULL,
  state VARCHAR(191) DEFAULT NULL,
  zipcode VARCHAR(191) DEFAULT NULL,
  timezone VARCHAR(191) DEFAULT NULL,
  country VARCHAR(191) DEFAULT NULL,
  fax VARCHAR(191) DEFAULT NULL,
  preferred_locale VARCHAR(191) DEFAULT NULL,
  attribution_date DATETIME DEFAULT NULL,
  attribution DOUBLE PRECISION DEFAULT NULL,
  website VARCHAR(191) DEFAULT NULL,
  facebook VARCHAR(191) DEFAULT NULL,
  foursquare VARCHAR(191) DEFAULT NULL,
  instagram VARCHAR(191) DEFAULT NULL,
  linkedin VARCHAR(191) DEFAULT NULL,
  skype VARCHAR(191) DEFAULT NULL,
  twitter VARCHAR(191) DEFAULT NULL,
  generated_email_domain VARCHAR(255) AS (SUBSTRING(email, LOCATE('@', email) + 1)) VIRTUAL COMMENT '(DC2Type:generated)',
  PRIMARY KEY (id),
  KEY `{prefix}IDX_leads_owner` (owner_id),
  KEY `{prefix}IDX_leads_stage` (stage_id),
  KEY `{prefix}lead_date_added` (date_added),
  KEY `{prefix}date_identified` (date_identified),
  KEY `{prefix}fax_search` (fax),
  KEY `{prefix}preferred_locale_search` (preferred_locale),
  KEY `{prefix}attribution_date_search` (attribution_date),
  KEY `{prefix}attribution_search` (attribution),
  KEY `{prefix}website_search` (website),
  KEY `{prefix}facebook_search` (facebook),
  KEY `{prefix}foursquare_search` (foursquare),
  KEY `{prefix}instagram_search` (instagram),
  KEY `{prefix}linkedin_search` (linkedin),
  KEY `{prefix}skype_search` (skype),
  KEY `{prefix}twitter_search` (twitter),
  KEY `{prefix}contact_attribution` (attribution, attribution_date),
  KEY `{prefix}date_added_country_index` (date_added, country),
  KEY `{prefix}generated_email_domain` (generated_email_domain),
  CONSTRAINT `{prefix}FK_leads_owner` FOREIGN KEY (owner_id) REFERENCES `{prefix}users` (id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci ROW_FORMAT=DYNAMIC;

CREATE TABLE `{prefix}lead_ips_xref` (
  lead_id BIGINT UNSIGNED NOT NULL,
  ip_id INT UNSIGNED NOT NULL,
  PRIMARY KEY (lead_id, ip_id),
  KEY `{prefix}IDX_lead_ips_xref_ip` (ip_id),
  CONSTRAINT `{prefix}FK_lead_ips_xref_lead` FOREIGN KEY (lead_id) REFERENCES `{prefix}leads` (id) ON DELETE CASCADE,
  CONSTRAINT `{prefix}FK_lead_ips_xref_ip` FOREIGN KEY (ip_id) REFERENCES `{prefix}ip_addresses` (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci ROW_FORMAT=DYNAMIC;

-- companies: signed INT id (errata). The fixed company fields come from the
-- entity, the other core fields from the installer with their _search index.
CREATE TABLE `{prefix}companies` (
  id INT AUTO_INCREMENT NOT NULL,
  owner_id INT UNSIGNED DEFAULT NULL,
  is_published TINYINT(1) NOT NULL,
  date_added DATETIME DEFAULT NULL,
  created_by INT DEFAULT NULL,
  created_by_user VARCHAR(191) DEFAULT NULL,
  date_modified DATETIME DEFAULT NULL,
  modified_by INT DEFAULT NULL,
  modified_by_user VARCHAR(191) DEFAULT NULL,
  checked_out DATETIME DEFAULT NULL,
  checked_out_by INT DEFAULT NULL,
  checked_out_by_user VARCHAR(191) DEFAULT NULL,
  social_cache LONGTEXT DEFAULT NULL COMMENT '(DC2Type:array)',
  score INT DEFAULT NULL,
  companyemail VARCHAR(191) DEFAULT NULL,
  companyaddress1 VARCHAR(191) DEFAULT NULL,
  companyaddress2 VARCHAR(191) DEFAULT NULL,
  companyphone VARCHAR(191) DEFAULT NULL,
  companycity VARCHAR(191) DEFAULT NULL,
  companystate VARCHAR(191) DEFAULT NULL,
  companyzipcode VARCHAR(191) DEFAULT NULL,
  companycountry VARCHAR(191) DEFAULT NULL,
  companyname VARCHAR(191) DEFAULT NULL,
  companywebsite VARCHAR(191) DEFAULT NULL,
  companyindustry VARCHAR(191) DEFAULT NULL,
  companydescription LONGTEXT DEFAULT NULL,
  companynumber_of_employees DOUBLE PRECISION DEFAULT NULL,
  companyfax VARCHAR(191) DEFAULT NULL,
  companyannual_revenue DOUBLE PRECISION DEFAULT NULL,
  PRIMARY KEY (id),
  KEY `{prefix}IDX_companies_owner` (owner_id),
  KEY `{prefix}companynumber_of_employees_search` (companynumber_of_employees),
  KEY `{prefix}companyfax_search` (companyfax),
  KEY `{prefix}companyannual_revenue_search` (companyannual_revenue),
  KEY `{prefix}company_filter` (companyname, companyemail),
  KEY `{prefix}company_match` (companyname, companycity, companycountry, companystate),
  CONSTRAINT `{prefix}FK_companies_owner` FOREIGN KEY (owner_id) REFERENCES `{prefix}users` (id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci ROW_FORMAT=DYNAMIC;

-- companies_leads: Mautic 5.x has no manually_added / manually_removed here.
CREATE TABLE `{prefix}companies_leads` (
  company_id INT NOT NULL,
  lead_id BIGINT UNSIGNED NOT NULL,
  date_added DATETIME NOT NULL,
  is_primary TINYINT(1) DEFAULT NULL,
  PRIMARY KEY (company_id, lead_id),
  KEY `{prefix}IDX_companies_leads_lead` (lead_id),
  CONSTRAINT `{prefix}FK_companies_leads_company` FOREIGN KEY (company_id) REFERENCES `{prefix}companies` (id) ON DELETE CASCADE,
  CONSTRAINT `{prefix}FK_companies_leads_lead` FOREIGN KEY (lead_id) REFERENCES `{prefix}leads` (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci ROW_FORMAT=DYNAMIC;

-- Marketing messages (reference section 2).
CREATE TABLE `{prefix}messages` (
  id INT UNSIGNED AUTO_INCREMENT NOT NULL,
  category_id INT UNSIGNED DEFAULT NULL,
  is_published TINYINT(1) NOT NULL,
  date_added DATETIME DEFAULT NULL,
  created_by INT DEFAULT NULL,
  created_by_user VARCHAR(191) DEFAULT NULL,
  date_modified DATETIME DEFAULT NULL,
  modified_by INT DEFAULT NULL,
  modified_by_user VARCHAR(191) DEFAULT NULL,
  checked_out DATETIME DEFAULT NULL,
  checked_out_by INT DEFAULT NULL,
  checked_out_by_user VARCHAR(191) DEFAULT NULL,
  name VARCHAR(191) NOT NULL,
  description LONGTEXT DEFAULT NULL,
  publish_up DATETIME DEFAULT NULL,
  publish_down DATETIME DEFAULT NULL,
  PRIMARY KEY (id),
  KEY `{prefix}IDX_messages_category` (category_id),
  KEY `{prefix}date_message_added` (date_added),
  CONSTRAINT `{prefix}FK_messages_category` FOREIGN KEY (category_id) REFERENCES `{prefix}categories` (id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci ROW_FORMAT=DYNAMIC;

CREATE TABLE `{prefix}message_channels` (
  id INT UNSIGNED AUTO_INCREMENT NOT NULL,
  message_id INT UNSIGNED NOT NULL,
  channel VARCHAR(191) NOT NULL,
  channel_id INT DEFAULT NULL,
  properties JSON NOT NULL,
  is_enabled TINYINT(1) NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY `{prefix}channel_index` (message_id, channel),
  KEY `{prefix}channel_entity_index` (channel, channel_id),
  KEY `{prefix}channel_enabled_index` (channel, is_enabled),
  CONSTRAINT `{prefix}FK_message_channels_message` FOREIGN KEY (message_id) REFERENCES `{prefix}messages` (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci ROW_FORMAT=DYNAMIC;

-- Channel preferences and do-not-contact (reference section 4).
CREATE TABLE `{prefix}lead_frequencyrules` (
  id INT UNSIGNED AUTO_INCREMENT NOT NULL,
  lead_id BIGINT UNSIGNED NOT NULL,
  date_added DATETIME NOT NULL,
  frequency_number SMALLINT DEFAULT NULL,
  frequency_time VARCHAR(25) DEFAULT NULL,
  channel VARCHAR(191) NOT NULL,
  preferred_channel TINYINT(1) NOT NULL,
  pause_from_date DATETIME DEFAULT NULL,
  pause_to_date DATETIME DEFAULT NULL,
  PRIMARY KEY (id),
  KEY `{prefix}channel_frequency` (channel),
  KEY `{prefix}idx_frequency_date_added` (lead_id, date_added),
  CONSTRAINT `{prefix}FK_frequencyrules_lead` FOREIGN KEY (lead_id) REFERENCES `{prefix}leads` (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci ROW_FORMAT=DYNAMIC;

CREATE TABLE `{prefix}lead_donotcontact` (
  id INT UNSIGNED AUTO_INCREMENT NOT NULL,
  lead_id BIGINT UNSIGNED DEFAULT NULL,
  date_added DATETIME NOT NULL,
  reason SMALLINT NOT NULL,
  channel VARCHAR(191) NOT NULL,
  channel_id INT DEFAULT NULL,
  comments LONGTEXT DEFAULT NULL,
  PRIMARY KEY (id),
  KEY `{prefix}leadid_reason_channel` (lead_id, channel, reason),
  KEY `{prefix}dnc_reason_search` (reason),
  KEY `{prefix}dnc_date_added` (date_added),
  CONSTRAINT `{prefix}FK_donotcontact_lead` FOREIGN KEY (lead_id) REFERENCES `{prefix}leads` (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci ROW_FORMAT=DYNAMIC;

-- Campaigns. version is the only NOT NULL column with a database default.
CREATE TABLE `{prefix}campaigns` (
  id INT UNSIGNED AUTO_INCREMENT NOT NULL,
  category_id INT UNSIGNED DEFAULT NULL,
  is_published TINYINT(1) NOT NULL,
  date_added DATETIME DEFAULT NULL,
  created_by INT DEFAULT NULL,
  created_by_user VARCHAR(191) DEFAULT NULL,
  date_modified DATETIME DEFAULT NULL,
  modified_by INT DEFAULT NULL,
  modified_by_user VARCHAR(191) DEFAULT NULL,
  checked_out DATETIME DEFAULT NULL,
  checked_out_by INT DEFAULT NULL,
  checked_out_by_user VARCHAR(191) DEFAULT NULL,
  name VARCHAR(191) NOT NULL,
  description LONGTEXT DEFAULT NULL,
  publish_up DATETIME DEFAULT NULL,
  publish_down DATETIME DEFAULT NULL,
  canvas_settings LONGTEXT DEFAULT NULL COMMENT '(DC2Type:array)',
  allow_restart TINYINT(1) NOT NULL,
  deleted DATETIME DEFAULT NULL,
  version INT UNSIGNED DEFAULT 1 NOT NULL,
  PRIMARY KEY (id),
  KEY `{prefix}IDX_campaigns_category` (category_id),
  CONSTRAINT `{prefix}FK_campaigns_category` FOREIGN KEY (category_id) REFERENCES `{prefix}categories` (id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci ROW_FORMAT=DYNAMIC;

-- parent_id has no ON DELETE clause in Mautic (errata).
CREATE TABLE `{prefix}campaign_events` (
  id INT UNSIGNED AUTO_INCREMENT NOT NULL,
  campaign_id INT UNSIGNED NOT NULL,
  parent_id INT UNSIGNED DEFAULT NULL,
  name VARCHAR(191) NOT NULL,
  description LONGTEXT DEFAULT NULL,
  type VARCHAR(50) NOT NULL,
  event_type VARCHAR(50) NOT NULL,
  event_order INT NOT NULL,
  properties LONGTEXT NOT NULL COMMENT '(DC2Type:array)',
  deleted DATETIME DEFAULT NULL,
  trigger_date DATETIME DEFAULT NULL,
  trigger_interval INT DEFAULT NULL,
  trigger_interval_unit VARCHAR(1) DEFAULT NULL,
  trigger_hour TIME DEFAULT NULL,
  trigger_restricted_start_hour TIME DEFAULT NULL,
  trigger_restricted_stop_hour TIME DEFAULT NULL,
  trigger_restricted_dow LONGTEXT DEFAULT NULL COMMENT '(DC2Type:array)',
  trigger_mode VARCHAR(10) DEFAULT NULL,
  decision_path VARCHAR(191) DEFAULT NULL,
  temp_id VARCHAR(191) DEFAULT NULL,
  channel VARCHAR(191) DEFAULT NULL,
  channel_id INT DEFAULT NULL,
  failed_count INT NOT NULL,
  PRIMARY KEY (id),
  KEY `{prefix}IDX_campaign_events_campaign` (campaign_id),
  KEY `{prefix}IDX_campaign_events_parent` (parent_id),
  KEY `{prefix}campaign_event_search` (type, event_type),
  KEY `{prefix}campaign_event_type` (event_type),
  KEY `{prefix}campaign_event_channel` (channel, channel_id),
  CONSTRAINT `{prefix}FK_campaign_events_campaign` FOREIGN KEY (campaign_id) REFERENCES `{prefix}campaigns` (id) ON DELETE CASCADE,
  CONSTRAINT `{prefix}FK_campaign_events_parent` FOREIGN KEY (parent_id) REFERENCES `{prefix}campaign_events` (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci ROW_FORMAT=DYNAMIC;

-- event_id and campaign_id have no ON DELETE clause in Mautic (errata).
CREATE TABLE `{prefix}campaign_lead_event_log` (
  id BIGINT UNSIGNED AUTO_INCREMENT NOT NULL,
  event_id INT UNSIGNED NOT NULL,
  lead_id BIGINT UNSIGNED NOT NULL,
  campaign_id INT UNSIGNED DEFAULT NULL,
  ip_id INT UNSIGNED DEFAULT NULL,
  rotation INT NOT NULL,
  date_triggered DATETIME DEFAULT NULL,
  is_scheduled TINYINT(1) NOT NULL,
  trigger_date DATETIME DEFAULT NULL,
  system_triggered TINYINT(1) NOT NULL,
  metadata LONGTEXT DEFAULT NULL COMMENT '(DC2Type:array)',
  channel VARCHAR(191) DEFAULT NULL,
  channel_id INT DEFAULT NULL,
  non_action_path_taken TINYINT(1) DEFAULT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY `{prefix}campaign_rotation` (event_id, lead_id, rotation),
  KEY `{prefix}IDX_campaign_event_log_ip` (ip_id),
  KEY `{prefix}campaign_event_upcoming_search` (is_scheduled, lead_id),
  KEY `{prefix}campaign_event_schedule_counts` (campaign_id, is_scheduled, trigger_date),
  KEY `{prefix}campaign_date_triggered` (date_triggered),
  KEY `{prefix}campaign_leads` (lead_id, campaign_id, rotation),
  KEY `{prefix}campaign_log_channel` (channel, channel_id, lead_id),
  KEY `{prefix}campaign_actions` (campaign_id, event_id, date_triggered),
  KEY `{prefix}campaign_stats` (campaign_id, date_triggered, event_id, non_action_path_taken),
  KEY `{prefix}campaign_trigger_date_order` (trigger_date),
  CONSTRAINT `{prefix}FK_campaign_event_log_event` FOREIGN KEY (event_id) REFERENCES `{prefix}campaign_events` (id),
  CONSTRAINT `{prefix}FK_campaign_event_log_lead` FOREIGN KEY (lead_id) REFERENCES `{prefix}leads` (id) ON DELETE CASCADE,
  CONSTRAINT `{prefix}FK_campaign_event_log_campaign` FOREIGN KEY (campaign_id) REFERENCES `{prefix}campaigns` (id),
  CONSTRAINT `{prefix}FK_campaign_event_log_ip` FOREIGN KEY (ip_id) REFERENCES `{prefix}ip_addresses` (id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci ROW_FORMAT=DYNAMIC;

CREATE TABLE `{prefix}campaign_lead_event_failed_log` (
  log_id BIGINT UNSIGNED NOT NULL,
  date_added DATETIME NOT NULL,
  reason LONGTEXT DEFAULT NULL,
  PRIMARY KEY (log_id),
  KEY `{prefix}campaign_event_failed_date` (date_added),
  CONSTRAINT `{prefix}FK_campaign_failed_log_log` FOREIGN KEY (log_id) REFERENCES `{prefix}campaign_lead_event_log` (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci ROW_FORMAT=DYNAMIC;

-- Deferred sends (reference section 5).
CREATE TABLE `{prefix}message_queue` (
  id BIGINT UNSIGNED AUTO_INCREMENT NOT NULL,
  event_id INT UNSIGNED DEFAULT NULL,
  lead_id BIGINT UNSIGNED NOT NULL,
  channel VARCHAR(191) NOT NULL,
  channel_id INT NOT NULL,
  priority SMALLINT NOT NULL,
  max_attempts SMALLINT NOT NULL,
  attempts SMALLINT NOT NULL,
  success TINYINT(1) NOT NULL,
  status VARCHAR(191) NOT NULL,
  date_published DATETIME DEFAULT NULL,
  scheduled_date DATETIME DEFAULT NULL,
  last_attempt DATETIME DEFAULT NULL,
  date_sent DATETIME DEFAULT NULL,
  options LONGTEXT DEFAULT NULL COMMENT '(DC2Type:array)',
  PRIMARY KEY (id),
  KEY `{prefix}IDX_message_queue_event` (event_id),
  KEY `{prefix}IDX_message_queue_lead` (lead_id),
  KEY `{prefix}message_status_search` (status),
  KEY `{prefix}message_date_sent` (date_sent),
  KEY `{prefix}message_scheduled_date` (scheduled_date),
  KEY `{prefix}message_priority` (priority),
  KEY `{prefix}message_success` (success),
  KEY `{prefix}message_channel_search` (channel, channel_id),
  KEY `{prefix}message_queue_date_published` (date_published),
  CONSTRAINT `{prefix}FK_message_queue_event` FOREIGN KEY (event_id) REFERENCES `{prefix}campaign_events` (id) ON DELETE CASCADE,
  CONSTRAINT `{prefix}FK_message_queue_lead` FOREIGN KEY (lead_id) REFERENCES `{prefix}leads` (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci ROW_FORMAT=DYNAMIC;

-- Email content, stored copies and stats (reference 6.1, 6.2). headers and
-- lang are NOT NULL (errata). unsubscribeform_id and preference_center_id
-- point at forms and pages, which are not modelled here.
CREATE TABLE `{prefix}emails` (
  id INT UNSIGNED AUTO_INCREMENT NOT NULL,
  category_id INT UNSIGNED DEFAULT NULL,
  translation_parent_id INT UNSIGNED DEFAULT NULL,
  variant_parent_id INT UNSIGNED DEFAULT NULL,
  unsubscribeform_id INT UNSIGNED DEFAULT NULL,
  preference_center_id INT UNSIGNED DEFAULT NULL,
  is_published TINYINT(1) NOT NULL,
  date_added DATETIME DEFAULT NULL,
  created_by INT DEFAULT NULL,
  created_by_user VARCHAR(191) DEFAULT NULL,
  date_modified DATETIME DEFAULT NULL,
  modified_by INT DEFAULT NULL,
  modified_by_user VARCHAR(191) DEFAULT NULL,
  checked_out DATETIME DEFAULT NULL,
  checked_out_by INT DEFAULT NULL,
  checked_out_by_user VARCHAR(191) DEFAULT NULL,
  name VARCHAR(191) NOT NULL,
  description LONGTEXT DEFAULT NULL,
  subject LONGTEXT DEFAULT NULL,
  preheader_text VARCHAR(191) DEFAULT NULL,
  from_address VARCHAR(191) DEFAULT NULL,
  from_name VARCHAR(191) DEFAULT NULL,
  reply_to_address VARCHAR(191) DEFAULT NULL,
  bcc_address VARCHAR(191) DEFAULT NULL,
  use_owner_as_mailer TINYINT(1) DEFAULT NULL,
  template VARCHAR(191) DEFAULT NULL,
  content LONGTEXT DEFAULT NULL COMMENT '(DC2Type:array)',
  utm_tags LONGTEXT DEFAULT NULL COMMENT '(DC2Type:array)',
  plain_text LONGTEXT DEFAULT NULL,
  custom_html LONGTEXT DEFAULT NULL,
  email_type LONGTEXT DEFAULT NULL,
  publish_up DATETIME DEFAULT NULL,
  publish_down DATETIME DEFAULT NULL,
  read_count INT NOT NULL,
  sent_count INT NOT NULL,
  variant_sent_count INT NOT NULL,
  variant_read_count INT NOT NULL,
  revision INT NOT NULL,
  lang VARCHAR(191) NOT NULL,
  variant_settings LONGTEXT DEFAULT NULL COMMENT '(DC2Type:array)',
  variant_start_date DATETIME DEFAULT NULL,
  dynamic_content LONGTEXT DEFAULT NULL COMMENT '(DC2Type:array)',
  headers JSON NOT NULL,
  public_preview TINYINT(1) DEFAULT NULL,
  PRIMARY KEY (id),
  KEY `{prefix}IDX_emails_category` (category_id),
  KEY `{prefix}IDX_emails_translation_parent` (translation_parent_id),
  KEY `{prefix}IDX_emails_variant_parent` (variant_parent_id),
  KEY `{prefix}IDX_emails_unsubscribeform` (unsubscribeform_id),
  KEY `{prefix}IDX_emails_preference_center` (preference_center_id),
  CONSTRAINT `{prefix}FK_emails_category` FOREIGN KEY (category_id) REFERENCES `{prefix}categories` (id) ON DELETE SET NULL,
  CONSTRAINT `{prefix}FK_emails_translation_parent` FOREIGN KEY (translation_parent_id) REFERENCES `{prefix}emails` (id) ON DELETE CASCADE,
  CONSTRAINT `{prefix}FK_emails_variant_parent` FOREIGN KEY (variant_parent_id) REFERENCES `{prefix}emails` (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci ROW_FORMAT=DYNAMIC;

CREATE TABLE `{prefix}email_copies` (
  id VARCHAR(32) NOT NULL,
  date_created DATETIME NOT NULL,
  body LONGTEXT DEFAULT NULL,
  body_text LONGTEXT DEFAULT NULL,
  subject LONGTEXT DEFAULT NULL,
  PRIMARY KEY (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci ROW_FORMAT=DYNAMIC;

-- list_id points at lead_lists (segments), not modelled here.
CREATE TABLE `{prefix}email_stats` (
  id BIGINT UNSIGNED AUTO_INCREMENT NOT NULL,
  email_id INT UNSIGNED DEFAULT NULL,
  lead_id BIGINT UNSIGNED DEFAULT NULL,
  list_id INT UNSIGNED DEFAULT NULL,
  ip_id INT UNSIGNED DEFAULT NULL,
  copy_id VARCHAR(32) DEFAULT NULL,
  email_address VARCHAR(191) NOT NULL,
  date_sent DATETIME NOT NULL,
  is_read TINYINT(1) NOT NULL,
  is_failed TINYINT(1) NOT NULL,
  viewed_in_browser TINYINT(1) NOT NULL,
  date_read DATETIME DEFAULT NULL,
  tracking_hash VARCHAR(191) DEFAULT NULL,
  retry_count INT DEFAULT NULL,
  source VARCHAR(191) DEFAULT NULL,
  source_id INT DEFAULT NULL,
  tokens LONGTEXT DEFAULT NULL COMMENT '(DC2Type:array)',
  open_count INT DEFAULT NULL,
  last_opened DATETIME DEFAULT NULL,
  open_details LONGTEXT DEFAULT NULL COMMENT '(DC2Type:array)',
  generated_sent_date DATE AS (DATE(date_sent)) VIRTUAL COMMENT '(DC2Type:generated)',
  PRIMARY KEY (id),
  KEY `{prefix}IDX_email_stats_list` (list_id),
  KEY `{prefix}IDX_email_stats_ip` (ip_id),
  KEY `{prefix}IDX_email_stats_copy` (copy_id),
  KEY `{prefix}stat_email_search` (email_id, lead_id),
  KEY `{prefix}stat_email_search2` (lead_id, email_id),
  KEY `{prefix}stat_email_failed_search` (is_failed),
  KEY `{prefix}is_read_date_sent` (is_read, date_sent),
  KEY `{prefix}stat_email_hash_search` (tracking_hash),
  KEY `{prefix}stat_email_source_search` (source, source_id),
  KEY `{prefix}email_date_sent` (date_sent),
  KEY `{prefix}email_date_read_lead` (date_read, lead_id),
  KEY `{prefix}stat_email_lead_id_date_sent` (lead_id, date_sent),
  KEY `{prefix}stat_email_email_id_is_read` (email_id, is_read),
  KEY `{prefix}generated_sent_date_email_id` (generated_sent_date, email_id),
  CONSTRAINT `{prefix}FK_email_stats_email` FOREIGN KEY (email_id) REFERENCES `{prefix}emails` (id) ON DELETE SET NULL,
  CONSTRAINT `{prefix}FK_email_stats_lead` FOREIGN KEY (lead_id) REFERENCES `{prefix}leads` (id) ON DELETE SET NULL,
  CONSTRAINT `{prefix}FK_email_stats_ip` FOREIGN KEY (ip_id) REFERENCES `{prefix}ip_addresses` (id) ON DELETE SET NULL,
  CONSTRAINT `{prefix}FK_email_stats_copy` FOREIGN KEY (copy_id) REFERENCES `{prefix}email_copies` (id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci ROW_FORMAT=DYNAMIC;

-- SMS content and stats (reference 6.3).
CREATE TABLE `{prefix}sms_messages` (
  id INT UNSIGNED AUTO_INCREMENT NOT NULL,
  category_id INT UNSIGNED DEFAULT NULL,
  is_published TINYINT(1) NOT NULL,
  date_added DATETIME DEFAULT NULL,
  created_by INT DEFAULT NULL,
  created_by_user VARCHAR(191) DEFAULT NULL,
  date_modified DATETIME DEFAULT NULL,
  modified_by INT DEFAULT NULL,
  modified_by_user VARCHAR(191) DEFAULT NULL,
  checked_out DATETIME DEFAULT NULL,
  checked_out_by INT DEFAULT NULL,
  checked_out_by_user VARCHAR(191) DEFAULT NULL,
  name VARCHAR(191) NOT NULL,
  description LONGTEXT DEFAULT NULL,
  lang VARCHAR(191) NOT NULL,
  message LONGTEXT NOT NULL,
  sms_type LONGTEXT DEFAULT NULL,
  publish_up DATETIME DEFAULT NULL,
  publish_down DATETIME DEFAULT NULL,
  sent_count INT NOT NULL,
  PRIMARY KEY (id),
  KEY `{prefix}IDX_sms_messages_category` (category_id),
  CONSTRAINT `{prefix}FK_sms_messages_category` FOREIGN KEY (category_id) REFERENCES `{prefix}categories` (id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci ROW_FORMAT=DYNAMIC;

CREATE TABLE `{prefix}sms_message_stats` (
  id BIGINT UNSIGNED AUTO_INCREMENT NOT NULL,
  sms_id INT UNSIGNED DEFAULT NULL,
  lead_id BIGINT UNSIGNED DEFAULT NULL,
  list_id INT UNSIGNED DEFAULT NULL,
  ip_id INT UNSIGNED DEFAULT NULL,
  date_sent DATETIME NOT NULL,
  is_failed TINYINT(1) DEFAULT NULL,
  tracking_hash VARCHAR(191) DEFAULT NULL,
  source VARCHAR(191) DEFAULT NULL,
  source_id INT DEFAULT NULL,
  tokens LONGTEXT DEFAULT NULL COMMENT '(DC2Type:array)',
  details JSON NOT NULL,
  PRIMARY KEY (id),
  KEY `{prefix}IDX_sms_stats_lead` (lead_id),
  KEY `{prefix}IDX_sms_stats_list` (list_id),
  KEY `{prefix}IDX_sms_stats_ip` (ip_id),
  KEY `{prefix}stat_sms_search` (sms_id, lead_id),
  KEY `{prefix}stat_sms_hash_search` (tracking_hash),
  KEY `{prefix}stat_sms_source_search` (source, source_id),
  KEY `{prefix}stat_sms_failed_search` (is_failed),
  CONSTRAINT `{prefix}FK_sms_stats_sms` FOREIGN KEY (sms_id) REFERENCES `{prefix}sms_messages` (id) ON DELETE SET NULL,
  CONSTRAINT `{prefix}FK_sms_stats_lead` FOREIGN KEY (lead_id) REFERENCES `{prefix}leads` (id) ON DELETE SET NULL,
  CONSTRAINT `{prefix}FK_sms_stats_ip` FOREIGN KEY (ip_id) REFERENCES `{prefix}ip_addresses` (id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci ROW_FORMAT=DYNAMIC;

-- Web and mobile push (reference 6.4).
CREATE TABLE `{prefix}push_notifications` (
  id INT UNSIGNED AUTO_INCREMENT NOT NULL,
  category_id INT UNSIGNED DEFAULT NULL,
  is_published TINYINT(1) NOT NULL,
  date_added DATETIME DEFAULT NULL,
  created_by INT DEFAULT NULL,
  created_by_user VARCHAR(191) DEFAULT NULL,
  date_modified DATETIME DEFAULT NULL,
  modified_by INT DEFAULT NULL,
  modified_by_user VARCHAR(191) DEFAULT NULL,
  checked_out DATETIME DEFAULT NULL,
  checked_out_by INT DEFAULT NULL,
  checked_out_by_user VARCHAR(191) DEFAULT NULL,
  name VARCHAR(191) NOT NULL,
  description LONGTEXT DEFAULT NULL,
  lang VARCHAR(191) NOT NULL,
  url LONGTEXT DEFAULT NULL,
  heading LONGTEXT NOT NULL,
  message LONGTEXT NOT NULL,
  button LONGTEXT DEFAULT NULL,
  utm_tags LONGTEXT DEFAULT NULL COMMENT '(DC2Type:array)',
  notification_type LONGTEXT DEFAULT NULL,
  publish_up DATETIME DEFAULT NULL,
  publish_down DATETIME DEFAULT NULL,
  read_count INT NOT NULL,
  sent_count INT NOT NULL,
  mobile TINYINT(1) NOT NULL,
  mobile_settings LONGTEXT NOT NULL COMMENT '(DC2Type:array)',
  PRIMARY KEY (id),
  KEY `{prefix}IDX_push_notifications_category` (category_id),
  CONSTRAINT `{prefix}FK_push_notifications_category` FOREIGN KEY (category_id) REFERENCES `{prefix}categories` (id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci ROW_FORMAT=DYNAMIC;

CREATE TABLE `{prefix}push_notification_stats` (
  id BIGINT UNSIGNED AUTO_INCREMENT NOT NULL,
  notification_id INT UNSIGNED DEFAULT NULL,
  lead_id BIGINT UNSIGNED DEFAULT NULL,
  list_id INT UNSIGNED DEFAULT NULL,
  ip_id INT UNSIGNED DEFAULT NULL,
  date_sent DATETIME NOT NULL,
  date_read DATETIME DEFAULT NULL,
  is_clicked TINYINT(1) NOT NULL,
  date_clicked DATETIME DEFAULT NULL,
  tracking_hash VARCHAR(191) DEFAULT NULL,
  retry_count INT DEFAULT NULL,
  source VARCHAR(191) DEFAULT NULL,
  source_id INT DEFAULT NULL,
  tokens LONGTEXT DEFAULT NULL COMMENT '(DC2Type:array)',
  click_count INT DEFAULT NULL,
  last_clicked DATETIME DEFAULT NULL,
  click_details LONGTEXT DEFAULT NULL COMMENT '(DC2Type:array)',
  PRIMARY KEY (id),
  KEY `{prefix}IDX_push_stats_lead` (lead_id),
  KEY `{prefix}IDX_push_stats_list` (list_id),
  KEY `{prefix}IDX_push_stats_ip` (ip_id),
  KEY `{prefix}stat_notification_search` (notification_id, lead_id),
  KEY `{prefix}stat_notification_clicked_search` (is_clicked),
  KEY `{prefix}stat_notification_hash_search` (tracking_hash),
  KEY `{prefix}stat_notification_source_search` (source, source_id),
  CONSTRAINT `{prefix}FK_push_stats_notification` FOREIGN KEY (notification_id) REFERENCES `{prefix}push_notifications` (id) ON DELETE SET NULL,
  CONSTRAINT `{prefix}FK_push_stats_lead` FOREIGN KEY (lead_id) REFERENCES `{prefix}leads` (id) ON DELETE SET NULL,
  CONSTRAINT `{prefix}FK_push_stats_ip` FOREIGN KEY (ip_id) REFERENCES `{prefix}ip_addresses` (id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci ROW_FORMAT=DYNAMIC;

-- push_ids: signed INT id (errata).
CREATE TABLE `{prefix}push_ids` (
  id INT AUTO_INCREMENT NOT NULL,
  lead_id BIGINT UNSIGNED DEFAULT NULL,
  push_id VARCHAR(191) NOT NULL,
  enabled TINYINT(1) NOT NULL,
  mobile TINYINT(1) NOT NULL,
  PRIMARY KEY (id),
  KEY `{prefix}IDX_push_ids_lead` (lead_id),
  CONSTRAINT `{prefix}FK_push_ids_lead` FOREIGN KEY (lead_id) REFERENCES `{prefix}leads` (id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci ROW_FORMAT=DYNAMIC;

-- Integrations and their encrypted keys (reference section 9).
CREATE TABLE `{prefix}plugins` (
  id INT UNSIGNED AUTO_INCREMENT NOT NULL,
  name VARCHAR(191) NOT NULL,
  description LONGTEXT DEFAULT NULL,
  is_missing TINYINT(1) NOT NULL,
  bundle VARCHAR(50) NOT NULL,
  version VARCHAR(191) DEFAULT NULL,
  author VARCHAR(191) DEFAULT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY `{prefix}unique_bundle` (bundle)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci ROW_FORMAT=DYNAMIC;

-- plugin_integration_settings: signed INT id (errata), plugin_id NULL for
-- core integrations (Twilio, OneSignal).
CREATE TABLE `{prefix}plugin_integration_settings` (
  id INT AUTO_INCREMENT NOT NULL,
  plugin_id INT UNSIGNED DEFAULT NULL,
  name VARCHAR(191) NOT NULL,
  is_published TINYINT(1) NOT NULL,
  supported_features LONGTEXT DEFAULT NULL COMMENT '(DC2Type:array)',
  api_keys LONGTEXT NOT NULL COMMENT '(DC2Type:array)',
  feature_settings LONGTEXT DEFAULT NULL COMMENT '(DC2Type:array)',
  PRIMARY KEY (id),
  KEY `{prefix}IDX_integration_settings_plugin` (plugin_id),
  CONSTRAINT `{prefix}FK_integration_settings_plugin` FOREIGN KEY (plugin_id) REFERENCES `{prefix}plugins` (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci ROW_FORMAT=DYNAMIC;

-- Tweets (MauticSocialBundle plugin, reference 6.5). text is VARCHAR(191)
-- (errata). page_id and asset_id point at pages and assets, not modelled.
CREATE TABLE `{prefix}tweets` (
  id INT UNSIGNED AUTO_INCREMENT NOT NULL,
  category_id INT UNSIGNED DEFAULT NULL,
  page_id INT UNSIGNED DEFAULT NULL,
  asset_id INT UNSIGNED DEFAULT NULL,
  is_published TINYINT(1) NOT NULL,
  date_added DATETIME DEFAULT NULL,
  created_by INT DEFAULT NULL,
  created_by_user VARCHAR(191) DEFAULT NULL,
  date_modified DATETIME DEFAULT NULL,
  modified_by INT DEFAULT NULL,
  modified_by_user VARCHAR(191) DEFAULT NULL,
  checked_out DATETIME DEFAULT NULL,
  checked_out_by INT DEFAULT NULL,
  checked_out_by_user VARCHAR(191) DEFAULT NULL,
  name VARCHAR(191) NOT NULL,
  description LONGTEXT DEFAULT NULL,
  media_id VARCHAR(191) DEFAULT NULL,
  media_path VARCHAR(191) DEFAULT NULL,
  text VARCHAR(191) NOT NULL,
  sent_count INT DEFAULT NULL,
  favorite_count INT DEFAULT NULL,
  retweet_count INT DEFAULT NULL,
  lang VARCHAR(191) DEFAULT NULL,
  PRIMARY KEY (id),
  KEY `{prefix}IDX_tweets_category` (category_id),
  KEY `{prefix}IDX_tweets_page` (page_id),
  KEY `{prefix}IDX_tweets_asset` (asset_id),
  KEY `{prefix}sent_count_index` (sent_count),
  KEY `{prefix}favorite_count_index` (favorite_count),
  KEY `{prefix}retweet_count_index` (retweet_count),
  CONSTRAINT `{prefix}FK_tweets_category` FOREIGN KEY (category_id) REFERENCES `{prefix}categories` (id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci ROW_FORMAT=DYNAMIC;

CREATE TABLE `{prefix}tweet_stats` (
  id INT UNSIGNED AUTO_INCREMENT NOT NULL,
  tweet_id INT UNSIGNED DEFAULT NULL,
  lead_id BIGINT UNSIGNED DEFAULT NULL,
  twitter_tweet_id VARCHAR(191) DEFAULT NULL,
  handle VARCHAR(191) NOT NULL,
  date_sent DATETIME DEFAULT NULL,
  is_failed TINYINT(1) DEFAULT NULL,
  retry_count INT DEFAULT NULL,
  source VARCHAR(191) DEFAULT NULL,
  source_id INT DEFAULT NULL,
  favorite_count INT DEFAULT NULL,
  retweet_count INT DEFAULT NULL,
  response_details JSON DEFAULT NULL,
  PRIMARY KEY (id),
  KEY `{prefix}stat_tweet_search` (tweet_id, lead_id),
  KEY `{prefix}stat_tweet_search2` (lead_id, tweet_id),
  KEY `{prefix}stat_tweet_failed_search` (is_failed),
  KEY `{prefix}stat_tweet_source_search` (source, source_id),
  KEY `{prefix}favorite_count_index` (favorite_count),
  KEY `{prefix}retweet_count_index` (retweet_count),
  KEY `{prefix}tweet_date_sent` (date_sent),
  KEY `{prefix}twitter_tweet_id_index` (twitter_tweet_id),
  CONSTRAINT `{prefix}FK_tweet_stats_tweet` FOREIGN KEY (tweet_id) REFERENCES `{prefix}tweets` (id) ON DELETE SET NULL,
  CONSTRAINT `{prefix}FK_tweet_stats_lead` FOREIGN KEY (lead_id) REFERENCES `{prefix}leads` (id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci ROW_FORMAT=DYNAMIC;
