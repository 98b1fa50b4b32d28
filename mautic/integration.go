package mautic

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
)

// Integration is a plugin_integration_settings row with its api_keys
// decrypted (mautic-reference.md 9).
type Integration struct {
	Name              string
	IsPublished       bool
	SupportedFeatures []string
	// APIKeys maps key names to decrypted values (Twilio: username =
	// Account SID, password = Auth Token; OneSignal: app_id, rest_api_key).
	APIKeys map[string]string
	// FeatureSettings is the plain (not encrypted) settings array.
	FeatureSettings map[string]any
}

// Integration reads the settings of a Mautic integration by name (Twilio,
// OneSignal, ...) and decrypts its keys with Mautic's secret_key. It returns
// ErrNotFound when there is no row for name. A key that does not decrypt is
// an error naming the key (never its value).
func (db *DB) Integration(ctx context.Context, name, secretKey string) (Integration, error) {
	var (
		in                       Integration
		features, keys, settings sql.NullString
	)
	err := db.QueryRowxContext(ctx, "SELECT name, is_published, supported_features, api_keys, feature_settings FROM "+
		db.T("plugin_integration_settings")+" WHERE name = ? ORDER BY id LIMIT 1", name).
		Scan(&in.Name, &in.IsPublished, &features, &keys, &settings)
	if errors.Is(err, sql.ErrNoRows) {
		return Integration{}, fmt.Errorf("integration %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return Integration{}, fmt.Errorf("integration %s: %w", name, err)
	}
	if features.String != "" {
		v, err := Unserialize([]byte(features.String))
		if err != nil {
			return in, fmt.Errorf("integration %s: supported_features: %w", name, err)
		}
		if a, ok := v.(*Array); ok {
			for _, f := range a.StringMap() {
				in.SupportedFeatures = append(in.SupportedFeatures, f)
			}
			sort.Strings(in.SupportedFeatures)
		}
	}
	if settings.String != "" {
		v, err := Unserialize([]byte(settings.String))
		if err != nil {
			return in, fmt.Errorf("integration %s: feature_settings: %w", name, err)
		}
		if a, ok := v.(*Array); ok {
			in.FeatureSettings = a.Map()
		}
	}
	in.APIKeys = map[string]string{}
	if keys.String == "" {
		return in, nil
	}
	v, err := Unserialize([]byte(keys.String))
	if err != nil {
		return in, fmt.Errorf("integration %s: api_keys: %w", name, err)
	}
	a, ok := v.(*Array)
	if !ok {
		return in, fmt.Errorf("integration %s: api_keys is not an array", name)
	}
	for k, enc := range a.StringMap() {
		if enc == "" {
			continue
		}
		if secretKey == "" {
			return in, fmt.Errorf("integration %s: api key %q is encrypted and MAUTIC_SECRET_KEY is not set", name, k)
		}
		plain, err := DecryptString(secretKey, enc)
		if err != nil {
			return in, fmt.Errorf("integration %s: api key %q: %w", name, k, err)
		}
		in.APIKeys[k] = plain
	}
	return in, nil
}
