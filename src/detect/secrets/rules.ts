/**
 * Secret rules as data: id (= finding category), prefilter keywords, a linear-time pattern
 * (capture group 1 is the secret when present), an optional entropy floor and validator.
 * Token formats are the providers' published prefixes/shapes; nothing here is a real token.
 */
import { shannonEntropy } from '../pii/validators.js';

/** One provider/format rule. */
export interface SecretRule {
  /** Rule id, also the finding category (snake_case), e.g. `aws_access_key_id`. */
  id: string;
  /** Human description (for docs and reasons). */
  description: string;
  /** Lower-case keywords; the rule runs only when one occurs in the text. */
  keywords: readonly string[];
  /** Global regex; the named group `secret` (or else group 1), when present, is the secret part. Bounded quantifiers only. */
  pattern: RegExp;
  /** Minimum Shannon entropy (bits/char) of the secret part. */
  entropy?: number;
  /** Extra validation of the secret part, the whole match, and up to 48 characters before the match. */
  validate?: (secret: string, match: string, before: string) => boolean;
  /** Severity; default `high`. */
  severity?: 'high' | 'critical';
  /** Confidence; default 0.9. */
  score?: number;
  /** Extends a match to its real end (e.g. a key block to its END line); returns the new end offset. */
  extend?: (text: string, matchEnd: number) => number;
  /**
   * A speed hint: every match of `pattern` contains a match of `re` starting at most `back`
   * characters after its own start. The rule then skips texts without one and scans from
   * `back` characters before the first one (same matches).
   */
  hint?: { re: RegExp; back: number };
}

/**
 * The assignment operator (ASSIGN_OP) of the generic rules: its `=` or `:` lies at most 69
 * characters after the match start (32 + 1 prefix, 14 for the longest key word, 17 suffix, a quote
 * and 4 spaces); 96 leaves room.
 */
const ASSIGN_HINT = { re: /[=:]/, back: 96 };

const KEY_BODY = /[A-Za-z0-9+/=\s:,.\\-]/;

/** End of a private key block: its END line, or the end of the base64 body when truncated. */
function extendPrivateKey(text: string, from: number): number {
  const limit = Math.min(text.length, from + 20000);
  const window = text.slice(from, limit);
  const m = /-----END[ A-Z0-9]{0,40}PRIVATE KEY(?: BLOCK)?-----/.exec(window);
  if (m && !window.slice(0, m.index).includes('-----BEGIN')) return from + m.index + m[0].length;
  let i = from;
  while (i < limit && KEY_BODY.test(text[i]!)) i++;
  while (i > from && /\s/.test(text[i - 1]!)) i--;
  return i;
}

const ASSIGN = `["'\`]?\\s{0,4}(?:=|:|=>|:=|\\s)\\s{0,4}["'\`]?`;
/** Assignment with an explicit operator (no bare whitespace), for the generic rules. */
const ASSIGN_OP = `["'\`]?\\s{0,4}(?:=|:|=>|:=)\\s{0,4}["'\`]?`;

/**
 * A key name containing one of `words` as a whole name part: at the start, after a separator
 * (`db_password`, `db.password`), or camel-cased (`dbPassword`), followed by the end of the name
 * or a separator and a short suffix. So `passport`, `bypass` or `compassion` never match `pass`.
 */
function keyName(words: string[]): string {
  const cased = words.flatMap((w) => [w, w[0]!.toUpperCase() + w.slice(1), w.toUpperCase()]);
  return `(?<![A-Za-z0-9])(?:[A-Za-z0-9]{1,32}[_.-]|[a-z0-9]{1,32}(?=[A-Z]))?(?:${cased.join('|')})(?:[_.-][A-Za-z0-9_.-]{1,16})?(?![A-Za-z0-9])`;
}
const B = '(?<![A-Za-z])';
const B_STRICT = '(?<![A-Za-z0-9_-])';
const E = '(?![A-Za-z0-9_-])';

function rx(source: string, flags = ''): RegExp {
  return new RegExp(source, 'g' + flags);
}

/** Prefix token rule: `prefix` followed by `body`, delimited by non-token characters. */
function tok(id: string, description: string, keywords: string[], body: string, extra: Partial<SecretRule> = {}): SecretRule {
  return { id, description, keywords, pattern: rx(`${B}(${body})${E}`), ...extra };
}

/** Assignment rule: a name containing one of `names` assigned a value matching `value`. */
function kv(id: string, description: string, names: string[], value: string, extra: Partial<SecretRule> = {}): SecretRule {
  const name = names.map((n) => n.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|');
  return {
    id,
    description,
    keywords: names.map((n) => n.toLowerCase()),
    pattern: rx(`(?:${name})[A-Za-z0-9_.-]{0,24}${ASSIGN}(${value})(?![A-Za-z0-9_+/=-])`, 'i'),
    ...extra,
  };
}

const PLACEHOLDER = /^(?:x+|\*+|\.+|-+|_+|0+|<[^>]*>|\$\{[^}]*\}|\{\{[^}]*\}\}|%[A-Za-z_]+%|\$[A-Za-z_][A-Za-z0-9_]*|changeme|change_me|password|passwd|secret|example|sample|dummy|test|testing|null|none|undefined|true|false|(?:your|my|the)[_-]?(?:password|passwd|secret|token|key|api[_-]?key|pass)(?:[_-]?here)?|replace[_-]?(?:with|me)\w*|insert[_-]?\w*|enter[_-]?\w*|redacted|hidden|placeholder|todo|fixme|xxx\w*)$/i;

/** True when a value looks like a placeholder or a reference rather than a literal secret. */
export function isPlaceholder(v: string): boolean {
  if (PLACEHOLDER.test(v)) return true;
  if (/^(?:process\.env|os\.environ|env\(|getenv|System\.getenv|ENV\[|\$\(|vault:|ref\+|arn:|secretsmanager|ssm:)/i.test(v)) return true;
  if (/(?:x{6,}|\*{4,}|\.{3}|<|>|\{|\}|\$\{|replace_with|your_)/i.test(v)) return true;
  if (/^(.)\1*$/.test(v)) return true;
  if (v.length >= 8 && v.length % 4 === 0 && /^[A-Za-z0-9+/]+={0,2}$/.test(v)) {
    // Base64 that decodes to readable text about dummies/examples is a documentation fake.
    const d = Buffer.from(v, 'base64').toString('latin1');
    if (/^[\x20-\x7e]+$/.test(d) && /dummy|example|sample|fake|placeholder|changeme|not[ _-]?a[ _-]?(?:real|secret)/i.test(d)) return true;
  }
  if (/^[a-z]+(?:[_-][a-z]+)*$/.test(v) && v.length < 24) return true; // a plain identifier-like word
  return false;
}

function notPlaceholder(secret: string): boolean {
  return !isPlaceholder(secret);
}

const HEX32 = '[a-f0-9]{32}';
const UUID = '[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}';

function jwtValid(token: string): boolean {
  const parts = token.split('.');
  if (parts.length < 2) return false;
  try {
    const header = JSON.parse(Buffer.from(parts[0]!, 'base64url').toString('utf8')) as unknown;
    if (typeof header !== 'object' || header === null || typeof (header as { alg?: unknown }).alg !== 'string') return false;
    const payload = Buffer.from(parts[1]!, 'base64url').toString('utf8');
    return payload.startsWith('{');
  } catch {
    return false;
  }
}

const CONN_SCHEMES = 'postgres(?:ql)?|postgis|mysql|mysqlx|mariadb|mongodb(?:\\+srv)?|redis|rediss|amqps?|mssql|sqlserver|oracle|cockroachdb|clickhouse|jdbc:[a-z]{2,12}|couchdb|cassandra|neo4j(?:\\+s)?|bolt|nats|kafka|ldaps?|smtps?|ftps?|sftp|ssh|elasticsearch|influxdb';

/** All built-in rules. */
export const SECRET_RULES: readonly SecretRule[] = [
  // ── cloud ──────────────────────────────────────────────────────────────────────────────
  tok('aws_access_key_id', 'AWS access key id', ['akia', 'asia', 'abia', 'acca', 'a3t'], '(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z2-7]{16}', { severity: 'critical' }),
  kv('aws_secret_access_key', 'AWS secret access key', ['aws_secret', 'secret_access_key', 'secretaccesskey', 'aws_secret_key', 'aws-secret'], '[A-Za-z0-9/+=]{40}', { entropy: 3.5, severity: 'critical' }),
  kv('aws_session_token', 'AWS session token', ['aws_session_token', 'aws-session-token', 'sessiontoken'], '[A-Za-z0-9/+=]{100,1200}', { entropy: 4 }),
  kv('aws_account_id', 'AWS account id in a configuration', ['aws_account_id', 'aws-account-id', 'awsaccountid', 'aws_account'], '\\d{4}-?\\d{4}-?\\d{4}', { score: 0.6 }),
  tok('gcp_api_key', 'Google Cloud / Gemini API key', ['aiza'], 'AIza[0-9A-Za-z_-]{35}', { severity: 'critical' }),
  tok('gcp_oauth_client_secret', 'Google OAuth client secret', ['gocspx-'], 'GOCSPX-[A-Za-z0-9_-]{28}'),
  tok('google_oauth_access_token', 'Google OAuth access token', ['ya29.'], 'ya29\\.[0-9A-Za-z_-]{30,400}'),
  tok('google_oauth_refresh_token', 'Google OAuth refresh token', ['1//0'], '1//0[0-9A-Za-z_-]{40,400}'),
  { id: 'gcp_service_account_key', description: 'GCP service account key id in a key file', keywords: ['private_key_id'], pattern: rx(`"private_key_id"\\s{0,4}:\\s{0,4}"([a-f0-9]{40})"`), severity: 'critical' },
  { id: 'azure_storage_account_key', description: 'Azure storage account key', keywords: ['accountkey='], pattern: rx('AccountKey=([A-Za-z0-9+/]{86}==)', 'i'), severity: 'critical' },
  { id: 'azure_sas_token', description: 'Azure shared access signature', keywords: ['sig='], pattern: rx('(?:sv=\\d{4}-\\d{2}-\\d{2}&)[^\\s"\']{0,300}?sig=([A-Za-z0-9%+/=]{40,120})'), score: 0.85 },
  tok('azure_ad_client_secret', 'Azure AD (Entra) client secret', ['q~'], '[A-Za-z0-9_~.]{3}\\dQ~[A-Za-z0-9_~.-]{31,34}', { entropy: 3 }),
  kv('azure_credential', 'Azure credential in a configuration variable', ['azure_client_secret', 'azure_password', 'arm_client_secret', 'azureclientsecret', 'azure_storage_key'], '[^\\s"\'`;,]{8,120}', { validate: notPlaceholder, entropy: 3 }),
  kv('azure_identity_id', 'Azure tenant/client id in a configuration', ['azure_tenant_id', 'azure_client_id', 'arm_tenant_id', 'arm_client_id', 'azuretenantid', 'azureclientid', 'azure_subscription_id', 'arm_subscription_id', 'ad_tenant_id', 'ad_client_id', 'aad_tenant_id', 'aad_client_id', 'entra_tenant_id', 'entra_client_id'], UUID, { score: 0.6 }),
  tok('digitalocean_pat', 'DigitalOcean personal access token', ['dop_v1_'], 'dop_v1_[a-f0-9]{64}', { severity: 'critical' }),
  tok('digitalocean_oauth_token', 'DigitalOcean OAuth token', ['doo_v1_'], 'doo_v1_[a-f0-9]{64}'),
  tok('digitalocean_refresh_token', 'DigitalOcean refresh token', ['dor_v1_'], 'dor_v1_[a-f0-9]{64}'),
  tok('alibaba_access_key_id', 'Alibaba Cloud access key id', ['ltai'], 'LTAI[A-Za-z0-9]{12,20}'),
  kv('alibaba_secret_key', 'Alibaba Cloud access key secret', ['alibaba_secret', 'aliyun_secret', 'access_key_secret'], '[A-Za-z0-9]{30}', { entropy: 3.5 }),
  kv('heroku_api_key', 'Heroku API key', ['heroku'], UUID),
  tok('heroku_api_key_v2', 'Heroku API key (HRKU- format)', ['hrku-'], 'HRKU-[A-Za-z0-9_-]{60}'),
  kv('cloudflare_api_token', 'Cloudflare API token', ['cloudflare', 'cf_api_token', 'cf_token'], '[A-Za-z0-9_-]{40}', { entropy: 3.5 }),
  kv('cloudflare_global_api_key', 'Cloudflare global API key', ['cloudflare', 'cf_api_key', 'x-auth-key'], '[a-f0-9]{37}'),
  tok('cloudflare_origin_ca_key', 'Cloudflare origin CA key', ['v1.0-'], 'v1\\.0-[a-f0-9]{24}-[a-f0-9]{146}'),
  tok('flyio_token', 'Fly.io access token', ['fo1_', 'fm1', 'fm2_'], '(?:fo1_[A-Za-z0-9_-]{43}|fm[12][ar]?_[A-Za-z0-9+/=_-]{100,2000})'),
  tok('cloudflare_prefixed_token', 'Cloudflare prefixed API token/key (cfat_/cfut_/cfk_)', ['cfat_', 'cfut_', 'cfk_'], 'cf(?:at|ut|k)_[A-Za-z0-9_-]{30,80}'),
  tok('vercel_prefixed_token', 'Vercel prefixed token (vcp_/vci_/vca_/vcr_/vck_)', ['vcp_', 'vci_', 'vca_', 'vcr_', 'vck_'], 'vc[pciark]_[A-Za-z0-9_-]{24,80}'),
  kv('vercel_token', 'Vercel token', ['vercel'], '[A-Za-z0-9]{24}', { entropy: 3.5 }),
  kv('netlify_token', 'Netlify access token', ['netlify'], '[A-Za-z0-9_-]{40,46}', { entropy: 3.5 }),
  tok('netlify_pat', 'Netlify personal access token (nfp_)', ['nfp_'], 'nfp_[A-Za-z0-9]{36}'),
  tok('hashicorp_vault_service_token', 'HashiCorp Vault service token', ['hvs.'], 'hvs\\.[A-Za-z0-9_-]{24,200}', { severity: 'critical' }),
  tok('hashicorp_vault_batch_token', 'HashiCorp Vault batch token', ['hvb.'], 'hvb\\.[A-Za-z0-9_-]{24,400}'),
  tok('hashicorp_vault_recovery_token', 'HashiCorp Vault recovery token', ['hvr.'], 'hvr\\.[A-Za-z0-9_-]{24,200}'),
  kv('hashicorp_vault_legacy_token', 'HashiCorp Vault legacy token', ['vault_token', 'x-vault-token', 'vault-token'], '[sbr]\\.[A-Za-z0-9]{24}'),
  tok('terraform_cloud_token', 'Terraform Cloud / HCP API token', ['atlasv1'], '[A-Za-z0-9]{14}\\.atlasv1\\.[A-Za-z0-9_=-]{60,70}'),
  tok('pulumi_access_token', 'Pulumi access token', ['pul-'], 'pul-[a-f0-9]{40}'),
  tok('doppler_token', 'Doppler token', ['dp.pt.', 'dp.st.', 'dp.sa.', 'dp.ct.', 'dp.scim.', 'dp.audit.'], 'dp\\.(?:pt|st|sa|ct|scim|audit)\\.[A-Za-z0-9]{40,44}'),
  tok('databricks_token', 'Databricks personal access token', ['dapi'], 'dapi[a-fA-F0-9]{32}(?:-\\d)?'),
  tok('supabase_service_token', 'Supabase access token', ['sbp_'], 'sbp_[a-f0-9]{40}'),
  tok('supabase_secret_key', 'Supabase secret API key', ['sb_secret_'], 'sb_secret_[A-Za-z0-9_-]{20,64}'),
  tok('planetscale_token', 'PlanetScale token or password', ['pscale_'], 'pscale_(?:tkn|pw|oauth)_[A-Za-z0-9_.-]{32,64}'),
  tok('tailscale_key', 'Tailscale API/auth key', ['tskey-'], 'tskey-[a-z]{1,12}-[A-Za-z0-9]{6,40}-[A-Za-z0-9]{6,64}'),
  tok('newrelic_key', 'New Relic user/ingest key', ['nrak-', 'nrii-', 'nrjs-', 'nral-'], 'NR(?:AK|II|JS|AL)-[A-Za-z0-9]{27,42}'),
  kv('datadog_api_key', 'Datadog API or application key', ['datadog', 'dd_api_key', 'dd_app_key', 'dd-api-key', 'dd_application_key'], '[a-f0-9]{32}(?:[a-f0-9]{8})?'),
  tok('grafana_cloud_token', 'Grafana Cloud access policy token', ['glc_'], 'glc_[A-Za-z0-9+/]{32,400}={0,2}'),
  tok('grafana_service_account_token', 'Grafana service account token', ['glsa_'], 'glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}'),
  tok('grafana_api_key', 'Grafana legacy API key', ['eyjrijoi'], 'eyJrIjoi[A-Za-z0-9+/]{60,400}={0,2}'),
  tok('sentry_token', 'Sentry auth token', ['sntrys_', 'sntryu_'], '(?:sntrys_eyJ[A-Za-z0-9+/=_-]{50,400}|sntryu_[a-f0-9]{64})'),
  tok('dynatrace_token', 'Dynatrace API token', ['dt0c01.'], 'dt0c01\\.[A-Z0-9]{24}\\.[A-Z0-9]{64}'),
  kv('ibm_cloud_api_key', 'IBM Cloud API key in a configuration', ['ibm_cloud_api_key', 'ibmcloud_api_key'], '[A-Za-z0-9_-]{44}'),
  kv('scaleway_secret_key', 'Scaleway secret key', ['scw_secret_key', 'scw'], `SCW[A-Z0-9]{17}`),
  // ── source control ─────────────────────────────────────────────────────────────────────
  tok('github_pat', 'GitHub personal access token (classic)', ['ghp_'], 'ghp_[A-Za-z0-9]{36}', { severity: 'critical' }),
  tok('github_oauth_token', 'GitHub OAuth access token', ['gho_'], 'gho_[A-Za-z0-9]{36}', { severity: 'critical' }),
  tok('github_user_to_server_token', 'GitHub App user-to-server token', ['ghu_'], 'ghu_[A-Za-z0-9]{36}'),
  tok('github_server_to_server_token', 'GitHub App installation token', ['ghs_'], 'ghs_(?:[A-Za-z0-9]{36}|\\d{1,12}_[A-Za-z0-9_-]{8,1200}\\.[A-Za-z0-9_-]{8,2000}\\.[A-Za-z0-9_-]{8,1000})'),
  tok('github_refresh_token', 'GitHub refresh token', ['ghr_'], 'ghr_[A-Za-z0-9]{36,76}'),
  tok('github_fine_grained_pat', 'GitHub fine-grained personal access token', ['github_pat_'], 'github_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59}', { severity: 'critical' }),
  tok('gitlab_pat', 'GitLab personal/project/group access token', ['glpat-'], 'glpat-[A-Za-z0-9_.-]{20,64}', { severity: 'critical' }),
  tok('gitlab_pipeline_trigger_token', 'GitLab pipeline trigger token', ['glptt-'], 'glptt-[A-Za-z0-9_-]{20,64}'),
  tok('gitlab_runner_token', 'GitLab runner authentication token', ['glrt-'], 'glrt-[A-Za-z0-9_.-]{20,64}'),
  tok('gitlab_runner_registration_token', 'GitLab runner registration token', ['gr1348941'], 'GR1348941[A-Za-z0-9_-]{20,40}'),
  tok('gitlab_deploy_token', 'GitLab deploy token', ['gldt-'], 'gldt-[A-Za-z0-9_-]{20,64}'),
  tok('gitlab_feed_token', 'GitLab feed token', ['glft-'], 'glft-[A-Za-z0-9_-]{20,64}'),
  tok('gitlab_oauth_secret', 'GitLab OAuth application secret', ['gloas-'], 'gloas-[A-Za-z0-9_-]{64}'),
  tok('gitlab_ci_job_token', 'GitLab CI job token', ['glcbt-'], 'glcbt-[A-Za-z0-9_-]{1,5}_[A-Za-z0-9_-]{20,64}'),
  tok('gitlab_incoming_mail_token', 'GitLab incoming mail / SCIM / agent tokens', ['glimt-', 'glsoat-', 'glagent-', 'glffct-'], '(?:glimt|glsoat|glagent|glffct)-[A-Za-z0-9_-]{20,64}'),
  tok('bitbucket_token', 'Bitbucket / Atlassian app token', ['atbb', 'atctt3'], '(?:ATBB[A-Za-z0-9_=.-]{32,64}|ATCTT3[A-Za-z0-9_=-]{100,300})'),
  tok('atlassian_api_token', 'Atlassian API token', ['atatt3'], 'ATATT3[A-Za-z0-9_=-]{100,300}'),
  kv('bitbucket_client_secret', 'Bitbucket client secret', ['bitbucket'], '[A-Za-z0-9=_-]{64}', { entropy: 3.5 }),
  // ── CI/CD and package registries ───────────────────────────────────────────────────────
  kv('circleci_token', 'CircleCI API token', ['circleci', 'circle_token', 'circle-token'], '[a-f0-9]{40}'),
  tok('circleci_pat', 'CircleCI personal API token (CCIPAT_)', ['ccipat_', 'cciprj_'], 'CCI(?:PAT|PRJ)_[A-Za-z0-9]{22}_[a-f0-9]{40}'),
  kv('travis_ci_token', 'Travis CI token', ['travis'], '[A-Za-z0-9_-]{22}', { entropy: 3.5 }),
  tok('buildkite_token', 'Buildkite agent/user token', ['bkua_'], 'bkua_[a-f0-9]{40}'),
  {
    id: 'git_url_token',
    description: 'Token embedded in a git/https URL (x-oauth-basic, x-access-token, oauth2)',
    keywords: ['x-oauth-basic', 'x-access-token', 'oauth2:'],
    pattern: rx('https?://(?:([A-Za-z0-9_-]{16,255}):x-oauth-basic|(?:x-access-token|oauth2|gitlab-ci-token):([A-Za-z0-9_.-]{16,255}))@', 'i'),
    severity: 'critical',
  },
  tok('npm_access_token', 'npm access token', ['npm_'], 'npm_[A-Za-z0-9]{36}', { severity: 'critical' }),
  kv('npm_auth_token', 'npm _authToken in .npmrc', ['_authtoken'], '[A-Za-z0-9_./+=-]{20,200}', { validate: notPlaceholder }),
  tok('pypi_token', 'PyPI upload token', ['pypi-ageichlwas5vcmc'], 'pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,300}', { severity: 'critical' }),
  tok('rubygems_token', 'RubyGems API key', ['rubygems_'], 'rubygems_[a-f0-9]{48}'),
  tok('docker_hub_pat', 'Docker Hub personal access token', ['dckr_pat_', 'dckr_oat_'], 'dckr_(?:pat|oat)_[A-Za-z0-9_-]{27,40}'),
  tok('nuget_api_key', 'NuGet API key', ['oy2'], 'oy2[a-z0-9]{43}'),
  tok('clojars_token', 'Clojars deploy token', ['clojars_'], 'CLOJARS_[a-z0-9]{60}'),
  tok('sonarqube_token', 'SonarQube/SonarCloud token', ['squ_', 'sqp_', 'sqa_'], 'sq[upa]_[a-f0-9]{40}'),
  tok('jfrog_api_key', 'JFrog Artifactory API key / token', ['akcp', 'cmvmdgtu'], '(?:AKCp[A-Za-z0-9]{69}|cmVmdGtu[A-Za-z0-9]{56})'),
  tok('harness_pat', 'Harness access token', ['pat.', 'sat.'], '(?:pat|sat)\\.[A-Za-z0-9_-]{22}\\.[a-f0-9]{24}\\.[A-Za-z0-9]{20}'),
  tok('octopus_deploy_api_key', 'Octopus Deploy API key', ['api-'], 'API-[A-Z0-9]{26,32}', { score: 0.7 }),
  kv('codecov_token', 'Codecov upload token (in a config)', ['codecov_token'], UUID),
  // ── payment and commerce ───────────────────────────────────────────────────────────────
  tok('stripe_secret_key', 'Stripe secret/restricted key', ['sk_live_', 'sk_test_', 'rk_live_', 'rk_test_'], '[sr]k_(?:live|test)_[A-Za-z0-9]{20,247}', { severity: 'critical' }),
  tok('stripe_webhook_secret', 'Stripe webhook signing secret', ['whsec_'], 'whsec_[A-Za-z0-9+/=]{32,100}'),
  tok('square_access_token', 'Square access token', ['eaaa', 'sq0atp-'], '(?:EAAA[A-Za-z0-9_-]{60}|sq0atp-[A-Za-z0-9_-]{22})'),
  tok('square_oauth_secret', 'Square OAuth secret', ['sq0csp-'], 'sq0csp-[A-Za-z0-9_-]{43}'),
  tok('braintree_access_token', 'PayPal Braintree access token', ['access_token$production$', 'access_token$sandbox$'], 'access_token\\$(?:production|sandbox)\\$[a-z0-9]{16}\\$[a-f0-9]{32}'),
  kv('paypal_client_secret', 'PayPal client secret', ['paypal_secret', 'paypal_client_secret'], '[A-Za-z0-9_-]{60,90}', { entropy: 3.5 }),
  tok('shopify_token', 'Shopify access/app token', ['shpat_', 'shpca_', 'shppa_', 'shpss_'], 'shp(?:at|ca|pa|ss)_[A-Za-z0-9]{32,40}', { severity: 'critical' }),
  tok('razorpay_key', 'Razorpay live key id', ['rzp_live_'], 'rzp_live_[A-Za-z0-9]{14}'),
  tok('flutterwave_secret_key', 'Flutterwave secret key', ['flwseck'], 'FLWSECK(?:_TEST)?-[a-h0-9]{32}-X'),
  tok('plaid_access_token', 'Plaid access token', ['access-sandbox-', 'access-development-', 'access-production-'], `access-(?:sandbox|development|production)-${UUID}`),
  tok('adyen_api_key', 'Adyen API key', ['aqe'], 'AQE[a-zA-Z0-9]{1}hmfx[A-Za-z0-9+/=_-]{40,300}'),
  tok('coinbase_api_secret', 'Coinbase CDP API key name', ['organizations/'], `organizations/${UUID}/apiKeys/${UUID}`, { score: 0.7 }),
  tok('shippo_token', 'Shippo API token', ['shippo_live_', 'shippo_test_'], 'shippo_(?:live|test)_[a-f0-9]{40}'),
  tok('easypost_key', 'EasyPost API key', ['ezak', 'eztk'], 'EZ[AT]K[a-z0-9]{54}'),
  // ── chat, email and collaboration ──────────────────────────────────────────────────────
  tok('slack_token', 'Slack bot/user/workspace token', ['xoxb-', 'xoxp-', 'xoxa-', 'xoxr-', 'xoxs-', 'xoxo-'], 'xox[bparso]-[A-Za-z0-9-]{10,250}', { severity: 'critical' }),
  tok('slack_app_token', 'Slack app-level token', ['xapp-'], 'xapp-\\d-[A-Z0-9]{6,20}-\\d{6,20}-[a-z0-9]{32,80}'),
  tok('slack_config_token', 'Slack configuration token', ['xoxe'], 'xoxe(?:\\.xox[bp])?-\\d-[A-Za-z0-9]{100,300}'),
  { id: 'slack_webhook_url', description: 'Slack incoming webhook URL', keywords: ['hooks.slack.com'], pattern: rx('https://hooks\\.slack\\.com/(?:services|workflows|triggers)/[A-Za-z0-9+/_-]{20,160}'), severity: 'high' },
  { id: 'discord_webhook_url', description: 'Discord webhook URL', keywords: ['discord'], pattern: rx('https://(?:ptb\\.|canary\\.)?discord(?:app)?\\.com/api/webhooks/\\d{17,20}/[A-Za-z0-9_-]{60,70}') },
  kv('discord_bot_token', 'Discord bot token', ['discord'], '[MNO][A-Za-z0-9_-]{23,27}\\.[A-Za-z0-9_-]{6}\\.[A-Za-z0-9_-]{27,40}'),
  tok('telegram_bot_token', 'Telegram bot token', [':aa'], '\\d{8,10}:AA[A-Za-z0-9_-]{33}'),
  { id: 'teams_webhook_url', description: 'Microsoft Teams incoming webhook URL', keywords: ['webhook.office.com', 'logic.azure.com'], pattern: rx('https://[A-Za-z0-9.-]{1,60}\\.(?:webhook\\.office\\.com/webhookb2|logic\\.azure\\.com:443/workflows)/[A-Za-z0-9@/?=&%._-]{40,400}') },
  tok('twilio_api_key', 'Twilio API key', ['twilio', 'sk'], 'SK[0-9a-fA-F]{32}', { score: 0.8 }),
  kv('twilio_auth_token', 'Twilio auth token', ['twilio_auth_token', 'twilio_token', 'auth_token'], HEX32),
  tok('sendgrid_api_key', 'SendGrid API key', ['sg.'], 'SG\\.[A-Za-z0-9_-]{22}\\.[A-Za-z0-9_-]{43}', { severity: 'critical' }),
  tok('mailgun_api_key', 'Mailgun API key', ['key-'], 'key-[0-9a-zA-Z]{32}'),
  tok('mailchimp_api_key', 'Mailchimp API key', ['-us'], '[0-9a-f]{32}-us\\d{1,2}'),
  kv('postmark_token', 'Postmark server token', ['postmark'], UUID),
  tok('linear_api_key', 'Linear API key', ['lin_api_'], 'lin_api_[A-Za-z0-9]{32,64}'),
  tok('notion_token', 'Notion integration token', ['secret_', 'ntn_'], '(?:secret_[A-Za-z0-9]{43}|ntn_[0-9]{11}[A-Za-z0-9]{35})'),
  tok('figma_pat', 'Figma personal access token', ['figd_'], 'figd_[A-Za-z0-9_-]{40,64}'),
  tok('airtable_pat', 'Airtable personal access token', ['pat'], 'pat[A-Za-z0-9]{14}\\.[a-f0-9]{64}'),
  tok('dropbox_token', 'Dropbox access token', ['sl.'], 'sl\\.[A-Za-z0-9_-]{130,1400}'),
  kv('okta_api_token', 'Okta API token', ['okta'], '00[A-Za-z0-9_-]{40}'),
  tok('onepassword_service_token', '1Password service account token', ['ops_eyj'], 'ops_eyJ[A-Za-z0-9+/=_-]{100,2000}', { severity: 'critical' }),
  tok('onepassword_secret_key', '1Password account secret key', ['a3-'], 'A3-[A-Z0-9]{6}-(?:[A-Z0-9]{6}|[A-Z0-9]{11})-[A-Z0-9]{5}-[A-Z0-9]{5}-[A-Z0-9]{5}'),
  tok('age_secret_key', 'age encryption secret key', ['age-secret-key-1'], 'AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}', { severity: 'critical' }),
  tok('mapbox_secret_token', 'Mapbox secret token', ['sk.eyj'], 'sk\\.eyJ[A-Za-z0-9_-]{50,400}\\.[A-Za-z0-9_-]{20,100}'),
  tok('twitter_bearer_token', 'X/Twitter bearer token', ['aaaaaaaaaaaaaaaaaaaaa'], 'AAAAAAAAAAAAAAAAAAAAA[A-Za-z0-9%]{30,200}'),
  tok('facebook_access_token', 'Facebook access token', ['eaaced', 'eaab'], '(?:EAACEdEose0cBA|EAAB)[0-9A-Za-z]{40,300}'),
  tok('postman_api_key', 'Postman API key', ['pmak-'], 'PMAK-[a-f0-9]{24}-[a-f0-9]{34}'),
  tok('readme_api_key', 'ReadMe API key', ['rdme_'], 'rdme_[a-z0-9]{70}'),
  tok('prefect_api_key', 'Prefect API key', ['pnu_'], 'pnu_[A-Za-z0-9]{36}'),
  tok('contentful_token', 'Contentful delivery/management token', ['cfpat-'], 'CFPAT-[A-Za-z0-9_-]{43}'),
  kv('algolia_admin_key', 'Algolia admin API key', ['algolia'], HEX32),
  kv('zendesk_secret', 'Zendesk API token in a configuration', ['zendesk_api_token', 'zendesk_token'], '[A-Za-z0-9]{40}'),
  tok('launchdarkly_key', 'LaunchDarkly SDK/API key', ['sdk-', 'api-'], `(?:sdk|api)-${UUID}`, { score: 0.75 }),
  // ── LLM and ML providers ───────────────────────────────────────────────────────────────
  tok('openai_api_key', 'OpenAI API key', ['sk-'], 'sk-(?:proj-|svcacct-|admin-|None-)?[A-Za-z0-9_-]{16,200}T3BlbkFJ[A-Za-z0-9_-]{16,200}', { severity: 'critical' }),
  tok('anthropic_api_key', 'Anthropic API key', ['sk-ant-'], 'sk-ant-(?:api|admin|sid)\\d{2}-[A-Za-z0-9_-]{80,120}', { severity: 'critical' }),
  tok('huggingface_token', 'Hugging Face access token', ['hf_'], 'hf_[A-Za-z]{34}', { severity: 'critical' }),
  tok('huggingface_org_token', 'Hugging Face organisation token', ['api_org_'], 'api_org_[A-Za-z]{34}'),
  kv('cohere_api_key', 'Cohere API key', ['cohere', 'co_api_key'], '[A-Za-z0-9]{40}', { entropy: 3.5 }),
  tok('groq_api_key', 'Groq API key', ['gsk_'], 'gsk_[A-Za-z0-9]{52}', { severity: 'critical' }),
  tok('replicate_api_token', 'Replicate API token', ['r8_'], 'r8_[A-Za-z0-9]{37}'),
  kv('mistral_api_key', 'Mistral API key', ['mistral'], '[A-Za-z0-9]{32}', { entropy: 3.5 }),
  tok('perplexity_api_key', 'Perplexity API key', ['pplx-'], 'pplx-[A-Za-z0-9]{48}'),
  tok('xai_api_key', 'xAI API key', ['xai-'], 'xai-[A-Za-z0-9]{80}'),
  kv('deepseek_api_key', 'DeepSeek API key', ['deepseek'], `sk-${HEX32}`),
  kv('together_api_key', 'Together AI API key', ['together'], '(?:tgp_v1_[A-Za-z0-9_-]{43}|[a-f0-9]{64})'),
  tok('fireworks_api_key', 'Fireworks AI API key', ['fw_'], 'fw_[A-Za-z0-9]{24}'),
  tok('openrouter_api_key', 'OpenRouter API key', ['sk-or-'], 'sk-or-v1-[a-f0-9]{64}'),
  tok('langsmith_api_key', 'LangSmith API key', ['lsv2_'], 'lsv2_(?:pt|sk)_[a-f0-9]{32}_[a-f0-9]{10}'),
  tok('pinecone_api_key', 'Pinecone API key', ['pcsk_'], 'pcsk_[A-Za-z0-9_]{50,100}'),
  kv('voyage_api_key', 'Voyage AI API key', ['voyage'], 'pa-[A-Za-z0-9_-]{43}'),
  tok('elevenlabs_api_key', 'ElevenLabs API key', ['sk_'], 'sk_[a-f0-9]{48}'),
  kv('wandb_api_key', 'Weights & Biases API key', ['wandb'], '[a-f0-9]{40}'),
  kv('assemblyai_api_key', 'AssemblyAI API key', ['assemblyai'], HEX32),
  tok('google_ai_studio_key', 'Google AI Studio key in a configuration', ['gemini_api_key', 'google_api_key'], 'AIza[0-9A-Za-z_-]{35}'),
  tok('portcullis_api_key', 'Portcullis gateway API key', ['pcl_'], 'pcl_[A-Za-z0-9]{8,64}_[A-Za-z0-9_-]{43}', { severity: 'critical', score: 0.95 }),
  // ── keys, tokens and credentials in generic formats ────────────────────────────────────
  {
    id: 'private_key',
    description: 'PEM / OpenSSH / PGP private key block (also when truncated or JSON-escaped)',
    keywords: ['private key'],
    pattern: rx('-----BEGIN[ A-Z0-9]{0,40}PRIVATE KEY(?: BLOCK)?-----'),
    extend: extendPrivateKey,
    validate: (s) => s.replace(/-----(?:BEGIN|END)[^-]{0,60}-----/g, '').replace(/\\n|[^A-Za-z0-9+/=]/g, '').length >= 32,
    severity: 'critical',
    score: 0.99,
  },
  tok('putty_private_key', 'PuTTY private key file', ['putty-user-key-file'], 'PuTTY-User-Key-File-\\d: [a-z0-9-]{7,32}', { severity: 'critical' }),
  {
    id: 'jwt',
    description: 'JSON Web Token (header decodes to JSON with alg)',
    keywords: ['eyj'],
    pattern: rx(`${B_STRICT}(eyJ[A-Za-z0-9_-]{8,2000}\\.[A-Za-z0-9_-]{2,8000}\\.[A-Za-z0-9_-]{0,2000})${E}`),
    validate: (s) => jwtValid(s),
    score: 0.85,
  },
  {
    id: 'connection_string_password',
    description: 'Database/broker connection string with an inline password',
    keywords: ['://'],
    pattern: rx(`(?<![A-Za-z0-9+.-])(?:${CONN_SCHEMES})://[^\\s:@/"'<>]{0,128}:([^\\s/"'<>]{1,256})@[^\\s"'<>@]{1,255}`, 'i'),
    validate: notPlaceholder,
    severity: 'critical',
  },
  {
    id: 'connection_string_password_param',
    description: 'Connection string with a password parameter (JDBC/ADO.NET/ODBC)',
    keywords: ['password=', 'pwd='],
    pattern: rx('(?:server|data source|host|jdbc:|uid|user id|user)[^\\n]{0,200}?;?\\s{0,2}(?:password|pwd)\\s{0,2}=\\s{0,2}([^;\'"\\s&]{3,128})', 'i'),
    validate: notPlaceholder,
  },
  {
    id: 'url_basic_auth',
    description: 'Credentials embedded in an http(s)/ftp URL',
    keywords: ['://'],
    pattern: rx('(?<![A-Za-z0-9+.-])(?:https?|ftp|ftps|git|svn|ssh)://[^\\s:@/"\'<>]{1,64}:([^\\s:@/"\'<>]{1,128})@[A-Za-z0-9.-]{1,253}', 'i'),
    validate: (s, whole) => !/x-oauth-basic|x-access-token/i.test(whole) && !/^(.)\1*$/.test(s) && !/[{}<>$%]|replace|your_|^\*+$|^x+$/i.test(s),
  },
  {
    id: 'basic_auth_header',
    description: 'HTTP Basic authorization header',
    keywords: ['basic '],
    pattern: rx('Authorization["\']?\\s{0,4}[:=]\\s{0,4}["\']?Basic\\s([A-Za-z0-9+/]{8,300}={0,2})', 'i'),
    validate: (s) => {
      try {
        const d = Buffer.from(s, 'base64').toString('utf8');
        return /^[^:\s]{1,128}:[^\s]{1,256}$/.test(d) && notPlaceholder(d.split(':')[1]!);
      } catch {
        return false;
      }
    },
  },
  {
    id: 'bearer_token',
    description: 'HTTP bearer token',
    keywords: ['bearer '],
    pattern: rx('Authorization["\']?\\s{0,4}[:=]\\s{0,4}["\']?Bearer\\s([A-Za-z0-9._~+/-]{20,2000}=*)', 'i'),
    validate: notPlaceholder,
    entropy: 3.5,
  },
  {
    id: 'generic_password',
    description: 'Password assigned in code or configuration',
    keywords: ['pass', 'pwd'],
    pattern: rx(`${keyName(['password', 'passwords', 'passwd', 'pwd', 'passphrase', 'pass', 'passw'])}${ASSIGN_OP}([^\\s"'\`;,)]{6,200})`),
    validate: (s) => notPlaceholder(s) && !/^\d{1,3}$/.test(s) && /\d|[^A-Za-z]/.test(s) && !/^[a-z][a-z0-9+.-]{1,10}:\/\//i.test(s),
    entropy: 2.5,
    score: 0.8,
    hint: ASSIGN_HINT,
  },
  {
    id: 'generic_secret',
    description: 'High-entropy value assigned to a secret/token/api-key name',
    keywords: ['secret', 'token', 'api_key', 'apikey', 'api-key', 'access_key', 'accesskey', 'auth', 'credential', 'private_key', 'client_secret', 'key'],
    pattern: rx(
      `${keyName(['secret', 'secrets', 'token', 'tokens', 'apikey', 'api_key', 'api-key', 'accesskey', 'access_key', 'authkey', 'auth_key', 'credential', 'credentials', 'privatekey', 'private_key', 'signingkey', 'signing_key', 'encryptionkey', 'encryption_key', 'masterkey', 'master_key', 'key', 'apiKey', 'accessKey', 'privateKey', 'secretKey', 'secret_key'])}${ASSIGN_OP}(?:!!binary\\s{1,4})?([A-Za-z0-9_+/=.~-]{10,300})`,
    ),
    validate: (s, whole, before) => notPlaceholder(s) && /\d/.test(s) && /[A-Za-z]/.test(s) && !/public|publishable|pub_?key/i.test(whole + before.slice(-24)) && (s.length >= 16 || /secret|token|api[_-]?key|password/i.test(whole)),
    entropy: 3,
    score: 0.75,
    hint: ASSIGN_HINT,
  },
  {
    id: 'secret_block_value',
    description: 'Value on an indented line under a password/secret key with an empty value (INI continuation, nested YAML)',
    keywords: ['pass', 'pwd', 'secret', 'token', 'credential', 'api_key', 'apikey'],
    // The key line ends in `=`/`:` with nothing after it; the value is on one of the next (up to
    // three) indented lines, more indented than the key, optionally behind a nested `name:`.
    pattern: rx(
      // (`(?<=\\n)(?=[ \\t])` first: the long look-behind below ends with a line break and the match
      // starts with indentation, so the look-behind is tried only at indented line starts.)
      `(?<=\\n)(?=[ \\t])(?<=^(?<ind>[ \\t]{0,16})${keyName(['password', 'passwords', 'passwd', 'pwd', 'passphrase', 'secret', 'secrets', 'token', 'tokens', 'credential', 'credentials', 'apikey', 'api_key'])
        .replace('{1,16})?(?![A-Za-z0-9])', '{1,32})?(?![A-Za-z0-9])')}[ \\t]{0,4}[=:][ \\t]{0,4}\\r?\\n(?:[ \\t]{1,32}[^\\n]{0,200}\\r?\\n){0,3})\\k<ind>[ \\t]{1,32}(?:[A-Za-z0-9_.-]{1,32}:[ \\t]{1,4})?(?<secret>[^\\s"'\`;,:]{6,200})[ \\t]*$`,
      'm',
    ),
    validate: (s) => notPlaceholder(s) && shannonEntropy(s) >= 3 && (/\d/.test(s) || s.length >= 24) && !/^[A-Za-z]+\/[A-Za-z.-]+$/.test(s),
    score: 0.7,
  },
  {
    id: 'secp256k1_private_key',
    description: '256-bit private key in hex: 0x-prefixed, or after private-key words (Ethereum/secp256k1 style)',
    keywords: ['0x', 'priv', 'secret', 'wallet', 'signing'],
    pattern: rx(
      // (Second form: the cheap checks first — not after a letter or digit, 64 hex digits ahead,
      // which `secret` needs anyway — so the long look-behind runs only where a key could start.)
      '(?:(?<![A-Za-z0-9])0x|(?<![A-Za-z0-9])(?=[0-9a-fA-F]{64})(?<=(?:private|priv|secret|wallet|signing)[ _-]?key\\b[^\\n]{0,24}?))(?<secret>[0-9a-fA-F]{64})(?![0-9A-Za-z])',
      'i',
    ),
    validate: (s, _whole, before) => /[a-f]/i.test(s) && /\d/.test(s) && shannonEntropy(s) >= 3.3 && !/hash|digest|sha\d*|checksum|commit|tx|transaction|block|public|pub_?key|address/i.test(before.slice(-40)),
    score: 0.6,
  },
  {
    id: 'high_entropy_string',
    description: 'Long high-entropy quoted or assigned string (hex or base64)',
    keywords: ['"', "'", '='],
    pattern: rx(`(?:["'=])([A-Za-z0-9+/=_-]{32,300})(?=["'\\s]|$)`),
    validate: (s, _whole, before) => {
      if (isPlaceholder(s) || /public|publishable|pub_?key|sha\d*|hash|digest|checksum|integrity|commit|etag/i.test(before.slice(-32))) return false;
      const hex = /^[a-fA-F0-9]+$/.test(s);
      if (hex) return s.length >= 32 && shannonEntropy(s) >= 3.5 && /[a-f]/i.test(s) && /\d/.test(s);
      return /\d/.test(s) && /[a-z]/.test(s) && /[A-Z]/.test(s) && shannonEntropy(s) >= 4.5;
    },
    score: 0.55,
  },
];
