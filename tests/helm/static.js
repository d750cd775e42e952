// Static checks of helm/lifeguard-reflector, TAP on stdout:
//   helm lint --strict; helm template over a matrix of values; every rendered object
//   validated against the Kubernetes schemas (kubernetes-models, prometheus-operator models);
//   assertions on the objects; bad values fail with the schema's (or the chart's) message;
//   the PrometheusRule expressions parse (promtool, when installed).
//
//   node static.js CHART TOOLS_DIR
'use strict';
const { execFileSync, spawnSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const [chart, tools] = process.argv.slice(2).map((p) => path.resolve(p));
const modules = path.join(tools, 'node_modules');
const yaml = require(path.join(modules, 'js-yaml'));
const helm = path.join(tools, 'bin', 'helm');

let n = 0;
let failed = 0;
function ok(cond, name, detail) {
  n++;
  if (cond) {
    console.log(`ok ${n} - ${name}`);
  } else {
    failed++;
    console.log(`not ok ${n} - ${name}`);
    if (detail) {
      for (const line of String(detail).split('\n').slice(0, 20)) console.log(`# ${line}`);
    }
  }
}

const BASE = ['--set', 'auth.adminToken=t0ken', '--set', 'auth.postgres=host=10.0.0.5 dbname=app',
  '--set', 'redis.host=redis.db.svc.cluster.local', '--set', 'auth.redisPassword=s3cret'];

function render(args, ns = 'prod') {
  const out = execFileSync(helm, ['template', 'rf', chart, '--namespace', ns, ...args],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return yaml.loadAll(out).filter((o) => o && typeof o === 'object');
}

// apiVersion -> module of model classes.
function modelClass(obj) {
  const [group, version] = obj.apiVersion.includes('/') ? obj.apiVersion.split('/')
    : ['', obj.apiVersion];
  let mod;
  if (group === 'monitoring.coreos.com') {
    mod = require(path.join(modules, '@kubernetes-models/prometheus-operator', group, version));
  } else {
    mod = require(path.join(modules, 'kubernetes-models', group, version));
  }
  return mod[obj.kind];
}

const byKind = (objs, kind) => objs.filter((o) => o.kind === kind);
const one = (objs, kind) => byKind(objs, kind)[0];

// --- lint -----------------------------------------------------------------------------
{
  const r = spawnSync(helm, ['lint', '--strict', chart, ...BASE], { encoding: 'utf8' });
  ok(r.status === 0, 'helm lint --strict', r.stdout + r.stderr);
  const mon = spawnSync(helm, ['lint', '--strict', chart, ...BASE, '--set',
    'monitoring.serviceMonitor.enabled=true', '--set', 'monitoring.prometheusRule.enabled=true'],
    { encoding: 'utf8' });
  ok(mon.status === 0, 'helm lint --strict (monitoring on)', mon.stdout + mon.stderr);
}

// --- matrix ---------------------------------------------------------------------------
const matrix = {
  'replicas 1': ['--set', 'replicaCount=1'],
  'replicas 3': ['--set', 'replicaCount=3'],
  'replicas 5': ['--set', 'replicaCount=5'],
  'existing Secret': ['--set', 'auth.adminToken=', '--set', 'auth.postgres=', '--set',
    'auth.redisPassword=', '--set', 'auth.existingSecret=rf-credentials'],
  'NetworkPolicy off': ['--set', 'networkPolicy.enabled=false'],
  'monitoring on': ['--set', 'monitoring.serviceMonitor.enabled=true', '--set',
    'monitoring.prometheusRule.enabled=true', '--set', 'replicaCount=5'],
};
let validated = 0;
const rendered = {};
for (const [label, extra] of Object.entries(matrix)) {
  let objs;
  try {
    objs = render([...BASE, ...extra]);
  } catch (e) {
    ok(false, `${label}: helm template`, e.stderr || e.message);
    continue;
  }
  rendered[label] = objs;
  const errors = [];
  for (const o of objs) {
    const Cls = modelClass(o);
    if (!Cls) {
      errors.push(`${o.apiVersion} ${o.kind}: no schema`);
      continue;
    }
    try {
      new Cls(o).validate();
      validated++;
    } catch (e) {
      errors.push(`${o.kind}/${o.metadata && o.metadata.name}: ${e.message}`);
    }
  }
  ok(errors.length === 0, `${label}: ${objs.length} objects valid against the schemas`,
    errors.join('\n'));
}
console.log(`# validated ${validated} rendered objects against the Kubernetes 1.31 schemas`);

// --- assertions -----------------------------------------------------------------------
function checkWorkload(label, objs, replicas) {
  const sts = one(objs, 'StatefulSet');
  ok(sts && sts.spec.replicas === replicas, `${label}: StatefulSet with ${replicas} replicas`);
  if (!sts) return;
  ok(sts.spec.podManagementPolicy === 'Parallel', `${label}: podManagementPolicy Parallel`);
  const headless = byKind(objs, 'Service').find((s) => s.spec.clusterIP === 'None');
  ok(headless && headless.spec.publishNotReadyAddresses === true &&
    sts.spec.serviceName === headless.metadata.name,
  `${label}: headless Service (not-ready addresses published) is the serviceName`);
  ok(byKind(objs, 'Service').some((s) => s.spec.clusterIP !== 'None' &&
    (s.spec.type || 'ClusterIP') === 'ClusterIP'), `${label}: a ClusterIP Service for HTTP`);
  const pod = sts.spec.template.spec;
  const c = pod.containers[0];
  ok(c.startupProbe && c.startupProbe.httpGet.path === '/healthz', `${label}: startup probe /healthz`);
  ok(c.readinessProbe && c.readinessProbe.httpGet.path === '/readyz', `${label}: readiness /readyz`);
  ok(c.livenessProbe && c.livenessProbe.httpGet.path === '/healthz', `${label}: liveness /healthz`);
  const psc = pod.securityContext;
  const csc = c.securityContext;
  ok(psc.runAsNonRoot === true && psc.runAsUser > 0 && psc.seccompProfile.type === 'RuntimeDefault',
    `${label}: pod runs as non-root with seccomp RuntimeDefault`);
  ok(csc.readOnlyRootFilesystem === true && csc.allowPrivilegeEscalation === false &&
    JSON.stringify(csc.capabilities.drop) === '["ALL"]' && csc.runAsNonRoot === true,
  `${label}: container read-only root, no escalation, capabilities drop ALL`);
  ok(c.resources && c.resources.requests && c.resources.limits, `${label}: resources set`);
  ok(pod.affinity && pod.affinity.podAntiAffinity, `${label}: pod anti-affinity`);
  ok(Array.isArray(pod.topologySpreadConstraints) && pod.topologySpreadConstraints.length > 0,
    `${label}: topology spread`);
  ok(sts.spec.volumeClaimTemplates && sts.spec.volumeClaimTemplates[0].metadata.name === 'data' &&
    c.volumeMounts.some((m) => m.name === 'data' && m.mountPath === '/var/lib/lifeguard-reflector'),
  `${label}: volumeClaimTemplates mounted at the data dir`);
  const env = Object.fromEntries(c.env.map((e) => [e.name, e]));
  ok(env.POD_NAME && env.POD_NAME.valueFrom.fieldRef.fieldPath === 'metadata.name',
    `${label}: node id derives from the pod name`);
  ok(env.LIFEGUARD_PEER_DOMAIN && env.LIFEGUARD_PEER_DOMAIN.value ===
    `${headless.metadata.name}.prod.svc.cluster.local`, `${label}: peers by headless DNS name`);
  ok(env.LIFEGUARD_ADMIN_TOKEN && env.LIFEGUARD_ADMIN_TOKEN.valueFrom.secretKeyRef,
    `${label}: admin token from a Secret`);
  // PDB arithmetic: a quorum stays up.
  const pdb = one(objs, 'PodDisruptionBudget');
  if (replicas === 1) {
    ok(!pdb, `${label}: no PDB for a single member (it could never be drained)`);
  } else {
    const quorum = Math.floor(replicas / 2) + 1;
    ok(pdb && pdb.spec.minAvailable === quorum,
      `${label}: PDB minAvailable ${pdb && pdb.spec.minAvailable} = quorum ${quorum}`);
  }
  // No secret in a ConfigMap.
  const secrets = ['t0ken', 's3cret', 'host=10.0.0.5'];
  const cms = JSON.stringify(byKind(objs, 'ConfigMap'));
  ok(!secrets.some((s) => cms.includes(s)) && !/admin_token|password|postgres/.test(cms),
    `${label}: no secret in a ConfigMap`);
  const cm = one(objs, 'ConfigMap');
  let settings = null;
  try {
    settings = JSON.parse(cm.data['reflector.json']);
  } catch (e) { /* reported below */ }
  ok(settings && settings.data_dir === '/var/lib/lifeguard-reflector' && !('peers' in settings),
    `${label}: ConfigMap holds settings as JSON, no identity`);
  const test = byKind(objs, 'Pod').find((p) => p.metadata.annotations &&
    p.metadata.annotations['helm.sh/hook'] === 'test');
  ok(test && test.spec.containers[0].args[0] === 'check-one-leader',
    `${label}: helm test hook checks for one leader`);
}

if (rendered['replicas 1']) checkWorkload('replicas 1', rendered['replicas 1'], 1);
if (rendered['replicas 3']) checkWorkload('replicas 3', rendered['replicas 3'], 3);
if (rendered['replicas 5']) checkWorkload('replicas 5', rendered['replicas 5'], 5);
if (rendered['existing Secret']) {
  const objs = rendered['existing Secret'];
  ok(byKind(objs, 'Secret').length === 0, 'existing Secret: the chart creates no Secret');
  const env = one(objs, 'StatefulSet').spec.template.spec.containers[0].env;
  ok(env.filter((e) => e.valueFrom && e.valueFrom.secretKeyRef)
    .every((e) => e.valueFrom.secretKeyRef.name === 'rf-credentials'),
  'existing Secret: every secret env var reads it');
}
if (rendered['replicas 3']) {
  const np = one(rendered['replicas 3'], 'NetworkPolicy');
  const raftRules = np ? np.spec.ingress.filter((r) => r.ports.some((p) => p.port === 'raft')) : [];
  ok(raftRules.length === 1 && raftRules[0].from.length === 1 &&
    raftRules[0].from[0].podSelector.matchLabels['app.kubernetes.io/component'] === 'member',
  'NetworkPolicy: raft port only from members');
  const s = one(rendered['replicas 3'], 'Secret');
  ok(s && Buffer.from(s.data['admin-token'], 'base64').toString() === 't0ken',
    'Secret holds the admin token');
}
if (rendered['NetworkPolicy off']) {
  ok(byKind(rendered['NetworkPolicy off'], 'NetworkPolicy').length === 0, 'NetworkPolicy off: none');
}
if (rendered['monitoring on']) {
  const objs = rendered['monitoring on'];
  const sm = one(objs, 'ServiceMonitor');
  const selected = sm ? byKind(objs, 'Service').filter((svc) =>
    Object.entries(sm.spec.selector.matchLabels)
      .every(([k, v]) => (svc.metadata.labels || {})[k] === v)) : [];
  ok(selected.length === 1 && selected[0].spec.clusterIP === 'None',
    'monitoring on: the ServiceMonitor selects the headless Service only (each pod once)');
  const rule = one(objs, 'PrometheusRule');
  const alerts = rule ? rule.spec.groups[0].rules.map((r) => r.alert) : [];
  const exprs = rule ? rule.spec.groups[0].rules.map((r) => r.expr).join('\n') : '';
  ok(['LifeguardReflectorNoLeader', 'LifeguardReflectorPipelineStalled',
    'LifeguardReflectorOutboxOld', 'LifeguardReflectorAuditFoundStaleKeys']
    .every((a) => alerts.includes(a)), 'monitoring on: the four alerts', alerts.join(','));
  ok(['lifeguard_reflector_is_leader', 'lifeguard_reflector_stalled',
    'lifeguard_reflector_outbox_oldest_age_seconds', 'lifeguard_reflector_audit_stale_total']
    .every((m) => exprs.includes(m)), 'monitoring on: alerts use the exported metric names');
  const promtool = spawnSync('promtool', ['--version'], { encoding: 'utf8' });
  if (promtool.status === 0 && rule) {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'rf-rules-')), 'rules.yaml');
    fs.writeFileSync(file, yaml.dump(rule.spec));
    const r = spawnSync('promtool', ['check', 'rules', file], { encoding: 'utf8' });
    ok(r.status === 0, 'monitoring on: promtool check rules', r.stdout + r.stderr);
    fs.rmSync(path.dirname(file), { recursive: true });
  }
}

// --- bad values -----------------------------------------------------------------------
const bad = [
  [['--set', 'replicaCount=0'], 'replicaCount: Must be greater than or equal to 1'],
  [['--set', 'replicaCount=three'], 'replicaCount: Invalid type'],
  [['--set', 'image.pullPolicy=Sometimes'], 'image.pullPolicy must be one of the following'],
  [['--set', 'securityContext.readOnlyRootFilesystem=false'],
    'securityContext.readOnlyRootFilesystem does not match'],
  [['--set', 'podSecurityContext.runAsNonRoot=false'], 'podSecurityContext.runAsNonRoot'],
  [['--set', 'ports.raft=70000'], 'ports.raft: Must be less than or equal to 65535'],
  [['--set', 'replicaz=3'], 'Additional property replicaz is not allowed'],
  [['--set', 'config.logLevel=loud'], 'config.logLevel must be one of the following'],
  [['--set', 'config.extra.peers=x'], 'config.extra'],
  [['--set', 'persistence.size=lots'], 'persistence.size: Does not match pattern'],
  [['--set', 'auth.adminToken='], 'auth.adminToken or auth.existingSecret is required'],
  [['--set', 'config.heartbeatTimeoutMs=600'], 'heartbeatTimeoutMs must be below'],
  [['--set', 'cluster.bootstrapMembers=5'], 'bootstrapMembers cannot exceed replicaCount'],
];
for (const [args, message] of bad) {
  const r = spawnSync(helm, ['template', 'rf', chart, ...BASE, ...args], { encoding: 'utf8' });
  ok(r.status !== 0 && r.stderr.includes(message),
    `bad value ${args[1]} fails with "${message}"`, r.stderr || '(accepted)');
}

console.log(`1..${n}`);
console.log(`# ${n - failed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
