#!/bin/sh
# Bootstrap of the developer stack: service mautic_install of
# docker/compose.yaml, run as www-data on the mautic/mautic:5-apache image
# with Mautic's volumes, once mautic_web is healthy. It
#
#   1. waits for the database;
#   2. installs Mautic with `bin/console mautic:install` unless
#      config/local.php already says it is installed;
#   3. through Mautic's REST API (enabled, with basic auth, by
#      MAUTIC_CONFIG_PARAMETERS in compose.yaml) makes sure these sample
#      objects exist, each looked up by its exact name before it is created,
#      so that a second run creates nothing:
#        - an email and an SMS text;
#        - a marketing message with the email channel, plus the SMS channel
#          when Mautic offers it (only when an SMS transport such as Twilio is
#          published in Mautic);
#        - a segment with two sample contacts;
#        - a campaign on that segment whose one action is "Send a webhook" to
#          the sidecar, carrying contact_id, message_id, campaign_id and
#          event_id. The webhook's URL, token and data are brought up to date
#          when they differ (a changed SIDECAR_TOKEN, say), never duplicated.
#
# It exits 1 when Mautic cannot be installed. A failure with the sample
# objects is logged, and it exits 0: Mautic and the sidecar work without them.
#
# It needs sh, curl, php and the MariaDB client, all in the image.
set -eu

: "${MAUTIC_SITE_URL:?}" "${MAUTIC_DB_HOST:?}" "${MAUTIC_DB_USER:?}" "${MAUTIC_DB_PASSWORD:?}"
: "${ADMIN_USERNAME:?}" "${ADMIN_PASSWORD:?}" "${ADMIN_EMAIL:?}"
: "${SIDECAR_WEBHOOK_URL:?}" "${SIDECAR_TOKEN:?}"
API="${MAUTIC_API_URL:-http://mautic_web}/api"
ROOT="${MAUTIC_ROOT:-/var/www/html}" # Mautic's directory in the image
CONSOLE="$ROOT/bin/console"
LOCAL_PHP="$ROOT/config/local.php"

EMAIL_NAME="Sidecar sample email"
SMS_NAME="Sidecar sample SMS"
MESSAGE_NAME="Sidecar sample marketing message"
SEGMENT_NAME="Sidecar sample segment"
CAMPAIGN_NAME="Sidecar sample campaign"

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

log() { printf 'bootstrap: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --- helpers -----------------------------------------------------------------

# api METHOD PATH [JSON]: calls Mautic's REST API as the admin and prints the
# answer's body. On a status other than 2xx it returns 1 and logs the status
# and the body (api_quiet: without logging). Leaves the status in $code.
API_QUIET=0
api() {
  set -- "$1" "$API$2" "${3-}"
  if [ -n "$3" ]; then
    code=$(curl -sS -o "$TMP/body" -w '%{http_code}' --max-time 60 \
      -u "$ADMIN_USERNAME:$ADMIN_PASSWORD" -H 'Accept: application/json' \
      -H 'Content-Type: application/json' -X "$1" --data-binary "$3" "$2") || code=000
  else
    code=$(curl -sS -o "$TMP/body" -w '%{http_code}' --max-time 60 \
      -u "$ADMIN_USERNAME:$ADMIN_PASSWORD" -H 'Accept: application/json' \
      -X "$1" "$2") || code=000
  fi
  case $code in
    2??) cat "$TMP/body" ;;
    *)
      if [ "$API_QUIET" != 1 ]; then
        log "$1 $2: HTTP $code"
        head -c 2000 "$TMP/body" >&2 2>/dev/null || true
        echo >&2
      fi
      return 1
      ;;
  esac
}
api_quiet() {
  API_QUIET=1
  if api "$@"; then API_QUIET=0; return 0; fi
  API_QUIET=0
  return 1
}

# json KEY.PATH: prints the value at KEY.PATH of the JSON document on stdin
# (arrays and objects as JSON); fails when the path is absent.
json() {
  php -r '
    $v = json_decode(stream_get_contents(STDIN), true);
    foreach (explode(".", $argv[1]) as $k) {
      if (!is_array($v) || !array_key_exists($k, $v)) { exit(1); }
      $v = $v[$k];
    }
    echo is_array($v) ? json_encode($v) : $v;' -- "$1"
}

# find_id PATH KEY NAME: the id of the object named exactly NAME in the list
# at API PATH (KEY is the list's key in the answer), or nothing.
find_id() {
  query=$(php -r 'echo http_build_query(["limit" => 200,
    "where" => [["col" => "name", "expr" => "eq", "val" => $argv[1]]]]);' -- "$3")
  found=$(api GET "/$1?$query") || return 1
  printf '%s' "$found" | php -r '
    $d = json_decode(stream_get_contents(STDIN), true);
    foreach (($d[$argv[1]] ?? []) as $o) {
      if (($o["name"] ?? null) === $argv[2]) { echo $o["id"]; break; }
    }' -- "$2" "$3"
}

# --- 1. the database ---------------------------------------------------------

i=0
until MYSQL_PWD="$MAUTIC_DB_PASSWORD" mysqladmin --host="$MAUTIC_DB_HOST" \
  --port="${MAUTIC_DB_PORT:-3306}" --user="$MAUTIC_DB_USER" --silent ping >/dev/null 2>&1; do
  i=$((i + 1))
  [ "$i" -lt 60 ] || die "the database at $MAUTIC_DB_HOST does not answer"
  sleep 2
done

# --- 2. Mautic's install -----------------------------------------------------

# Installed means local.php has db_driver and site_url: the test of the image's
# entrypoint and of Mautic's installer.
installed() {
  php -r 'include $argv[1];
    exit(!empty($parameters["db_driver"]) && !empty($parameters["site_url"]) ? 0 : 1);' \
    -- "$LOCAL_PHP" >/dev/null 2>&1
}

[ -f "$LOCAL_PHP" ] || die "$LOCAL_PHP is missing: the mautic_web container creates it at start"
if installed; then
  log "Mautic is already installed"
else
  log "installing Mautic for $MAUTIC_SITE_URL"
  php "$CONSOLE" mautic:install "$MAUTIC_SITE_URL" --force \
    --admin_username="$ADMIN_USERNAME" --admin_email="$ADMIN_EMAIL" \
    --admin_password="$ADMIN_PASSWORD" --admin_firstname=Admin --admin_lastname=Sidecar ||
    die "mautic:install failed"
  # The installer also exits 0 when it stops at the requirements check.
  installed || die "mautic:install did not complete: see its output above"
fi

# --- 3. the sample objects, through the REST API -----------------------------

# Mautic is installed now, which is all the other services need. A failure from
# here on is reported and leaves Mautic and the sidecar running without the
# samples: the bootstrap still exits 0, so that the services after it start.
set +e
(
  set -e

  # Mautic's REST API, as the admin.
  i=0
  until api_quiet GET /users/self >/dev/null; do
    case $code in
      401) die "Mautic refuses $ADMIN_USERNAME's password: was ADMIN_PASSWORD changed after the first install? ('docker compose down -v' starts afresh)" ;;
      403) die "Mautic's API or its basic auth is disabled: check MAUTIC_CONFIG_PARAMETERS" ;;
    esac
    i=$((i + 1))
    [ "$i" -lt 60 ] || die "Mautic's API at $API does not answer (last HTTP status $code)"
    sleep 2
  done

  # The email.
  email_id=$(find_id emails emails "$EMAIL_NAME") || die "cannot list emails"
  if [ -z "$email_id" ]; then
    payload=$(php -r 'echo json_encode([
      "name" => $argv[1],
      "subject" => "Hello {contactfield=firstname|there}, from the Marketing Messages sidecar",
      "emailType" => "template",
      "isPublished" => true,
      "customHtml" => "<!DOCTYPE html><html><body>"
        . "<p>Hello {contactfield=firstname|there},</p>"
        . "<p>The sidecar chose email for you and sent this sample.</p>"
        . "<p><a href=\"{unsubscribe_url}\">Unsubscribe</a></p></body></html>",
    ]);' -- "$EMAIL_NAME")
    email_id=$(api POST /emails/new "$payload" | json email.id) || die "cannot create the email"
    log "created email $email_id"
  fi

  # The SMS text. Mautic keeps SMS texts even without a transport; failing here
  # only costs the SMS channel.
  sms_id=$(find_id smses smses "$SMS_NAME") || sms_id=""
  if [ -z "$sms_id" ]; then
    payload=$(php -r 'echo json_encode([
      "name" => $argv[1],
      "message" => "Hi {contactfield=firstname|there}, the sidecar chose SMS for you.",
      "smsType" => "template",
      "isPublished" => true,
    ]);' -- "$SMS_NAME")
    if sms_id=$(api POST /smses/new "$payload" | json sms.id); then
      log "created SMS text $sms_id"
    else
      sms_id=""
      log "warning: cannot create the SMS text; the message gets the email channel only"
    fi
  fi

  # message_payload EMAIL_ID [SMS_ID]: a marketing message with these channels.
  message_payload() {
    php -r '
      [, $name, $email, $sms] = $argv + [3 => ""];
      $channels = ["email" => ["channel" => "email", "channelId" => (int) $email, "isEnabled" => 1]];
      if ($sms !== "") {
        $channels["sms"] = ["channel" => "sms", "channelId" => (int) $sms, "isEnabled" => 1];
      }
      echo json_encode([
        "name" => $name,
        "description" => "Created by the sidecar developer stack (docker/bootstrap).",
        "isPublished" => true,
        "channels" => $channels,
      ]);' -- "$MESSAGE_NAME" "$@"
  }

  # channels_of: the enabled channels (with content) of the message on stdin.
  channels_of() {
    php -r '
      $m = json_decode(stream_get_contents(STDIN), true)["message"] ?? [];
      $on = [];
      foreach (($m["channels"] ?? []) as $key => $c) {
        if (!empty($c["isEnabled"]) && !empty($c["channelId"])) { $on[] = $c["channel"] ?? $key; }
      }
      echo implode(",", $on);'
  }

  # The marketing message. The SMS channel exists in Mautic only while an SMS
  # transport is published; Mautic refuses it otherwise, and then the message is
  # made with email alone (and the SMS channel is tried again on the next run).
  message_id=$(find_id messages messages "$MESSAGE_NAME") || die "cannot list marketing messages"
  if [ -z "$message_id" ]; then
    body=""
    if [ -n "$sms_id" ]; then
      body=$(api_quiet POST /messages/new "$(message_payload "$email_id" "$sms_id")") || body=""
    fi
    if [ -z "$body" ]; then
      body=$(api POST /messages/new "$(message_payload "$email_id")") ||
        die "cannot create the marketing message"
    fi
    message_id=$(printf '%s' "$body" | json message.id) || die "no id in Mautic's answer"
    log "created marketing message $message_id (channels: $(printf '%s' "$body" | channels_of))"
  else
    body=$(api GET "/messages/$message_id") || die "cannot read marketing message $message_id"
    channels=$(printf '%s' "$body" | channels_of)
    case ",$channels," in
      *,sms,*) ;;
      *)
        if [ -n "$sms_id" ] && api_quiet PATCH "/messages/$message_id/edit" \
          "$(message_payload "$email_id" "$sms_id")" >/dev/null; then
          channels="$channels,sms"
          log "added the SMS channel to marketing message $message_id"
        fi
        ;;
    esac
    log "marketing message $message_id exists (channels: $channels)"
  fi

  # The segment and its contacts. Creating a contact whose email Mautic already
  # knows returns that contact, and adding a member twice changes nothing.
  segment_id=$(find_id segments lists "$SEGMENT_NAME") || die "cannot list segments"
  if [ -z "$segment_id" ]; then
    payload=$(php -r 'echo json_encode(["name" => $argv[1], "alias" => "sidecar-sample",
      "isPublished" => true, "isGlobal" => true, "filters" => []]);' -- "$SEGMENT_NAME")
    segment_id=$(api POST /segments/new "$payload" | json list.id) || die "cannot create the segment"
    log "created segment $segment_id"
  fi
  for contact in 'ada@example.com Ada Lovelace' 'grace@example.com Grace Hopper +14155550123'; do
    # shellcheck disable=SC2086 # word splitting is the point
    set -- $contact
    payload=$(php -r '[, $email, $first, $last, $mobile] = $argv + [4 => ""];
      echo json_encode(array_filter(["email" => $email, "firstname" => $first,
        "lastname" => $last, "mobile" => $mobile]));' -- "$@")
    contact_id=$(api POST /contacts/new "$payload" | json contact.id) || die "cannot create contact $1"
    api POST "/segments/$segment_id/contact/$contact_id/add" >/dev/null ||
      die "cannot add contact $contact_id to segment $segment_id"
  done

  # webhook_event EVENT_ID MESSAGE_ID [CAMPAIGN_ID]: the campaign's "Send a
  # webhook" event, as the events and canvasSettings of Mautic's campaign API.
  # Properties are those of Mautic's form CampaignEventSendWebhookType (lists
  # under "list", as its SortableListType stores them).
  webhook_event() {
    php -r '
      [, $event, $message, $campaign] = $argv + [3 => ""];
      // Mautic keys the data list by value: two rows with the same value
      // collapse into one. Ids that are equal are written with leading
      // zeros, which the sidecar reads as the same number.
      $used = [];
      $distinct = function (string $v) use (&$used): string {
        while (isset($used[$v])) {
          $v = "0" . $v;
        }
        $used[$v] = true;
        return $v;
      };
      $data = [
        ["label" => "contact_id", "value" => $distinct("{contactfield=id}")],
        ["label" => "message_id", "value" => $distinct((string) $message)],
      ];
      if ($campaign !== "") {
        $data[] = ["label" => "campaign_id", "value" => $distinct((string) $campaign)];
        $data[] = ["label" => "event_id", "value" => $distinct((string) $event)];
      }
      echo json_encode([
        "events" => [[
          "id" => (string) $event,
          "name" => "Send the marketing message through the sidecar",
          "type" => "campaign.sendwebhook",
          "eventType" => "action",
          "order" => 1,
          "triggerMode" => "immediate",
          "triggerInterval" => 0,
          "triggerIntervalUnit" => "d",
          "properties" => [
            "url" => getenv("SIDECAR_WEBHOOK_URL"),
            "method" => "post",
            "timeout" => 10,
            "headers" => ["list" => [
              ["label" => "Authorization", "value" => "Bearer " . getenv("SIDECAR_TOKEN")],
            ]],
            "additional_data" => ["list" => $data],
          ],
        ]],
        "canvasSettings" => [
          "nodes" => [
            ["id" => "lists", "positionX" => "400", "positionY" => "50"],
            ["id" => (string) $event, "positionX" => "400", "positionY" => "200"],
          ],
          "connections" => [[
            "sourceId" => "lists",
            "targetId" => (string) $event,
            "anchors" => ["source" => "leadsource", "target" => "top"],
          ]],
        ],
      ]);' -- "$@"
  }

  # webhook_of: "EVENT_ID PROPERTIES" of the webhook event of the campaign on
  # stdin, the properties reduced to what webhook_event sets.
  webhook_of() {
    php -r '
      $c = json_decode(stream_get_contents(STDIN), true)["campaign"] ?? [];
      foreach (($c["events"] ?? []) as $e) {
        if (($e["type"] ?? "") !== "campaign.sendwebhook") { continue; }
        $p = $e["properties"] ?? [];
        echo $e["id"], " ", json_encode([$p["url"] ?? null, $p["method"] ?? null,
          $p["headers"]["list"] ?? null, $p["additional_data"]["list"] ?? null]);
        exit(0);
      }
      exit(1);'
  }

  # wanted_webhook EVENT_ID CAMPAIGN_ID: what webhook_of should print.
  wanted_webhook() {
    webhook_event "$1" "$message_id" "$2" | php -r '
      $p = json_decode(stream_get_contents(STDIN), true)["events"][0]["properties"];
      echo $argv[1], " ", json_encode([$p["url"], $p["method"],
        $p["headers"]["list"], $p["additional_data"]["list"]]);' -- "$1"
  }

  # The campaign: created with a temporary event id, then its webhook gets the
  # real campaign and event ids (and, on later runs, the current URL and token).
  campaign_id=$(find_id campaigns campaigns "$CAMPAIGN_NAME") || die "cannot list campaigns"
  if [ -z "$campaign_id" ]; then
    payload=$(webhook_event new1 "$message_id" | php -r '
      $c = json_decode(stream_get_contents(STDIN), true);
      echo json_encode($c + [
        "name" => $argv[1],
        "description" => "Sends the sample marketing message through the sidecar (docker/bootstrap).",
        "isPublished" => true,
        "allowRestart" => false,
        "lists" => [["id" => (int) $argv[2]]],
        "forms" => [],
      ]);' -- "$CAMPAIGN_NAME" "$segment_id")
    campaign_id=$(api POST /campaigns/new "$payload" | json campaign.id) || die "cannot create the campaign"
    log "created campaign $campaign_id"
  fi
  campaign=$(api GET "/campaigns/$campaign_id") || die "cannot read campaign $campaign_id"
  current=$(printf '%s' "$campaign" | webhook_of) ||
    die "campaign $campaign_id has no \"Send a webhook\" action: delete it to have it made again"
  event_id=${current%% *}
  if [ "$current" != "$(wanted_webhook "$event_id" "$campaign_id")" ]; then
    api PATCH "/campaigns/$campaign_id/edit" "$(webhook_event "$event_id" "$message_id" "$campaign_id")" >/dev/null ||
      die "cannot update the webhook of campaign $campaign_id"
    log "set the webhook of campaign $campaign_id (event $event_id) to $SIDECAR_WEBHOOK_URL"
  fi

  log "ready: marketing message $message_id, campaign $campaign_id (webhook event $event_id) on segment $segment_id"
  log "run it now (cron does every 15 minutes):"
  log "  docker compose -f docker/compose.yaml exec -u www-data mautic_cron php $CONSOLE mautic:campaigns:update -i $campaign_id"
  log "  docker compose -f docker/compose.yaml exec -u www-data mautic_cron php $CONSOLE mautic:campaigns:trigger -i $campaign_id"
)
status=$?
set -e
if [ "$status" -ne 0 ]; then
  log "error: the sample objects are incomplete (see above); Mautic and the sidecar run without them."
  log "Fix the cause, then run the bootstrap again: docker compose -f docker/compose.yaml up mautic_install"
fi
