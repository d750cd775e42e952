// Extracts what the pod simulation needs from `helm template` output, so that nothing about
// the pods is hand-written: the member container's command, args, env (with Secret and
// fieldRef sources resolved), ports, probes and mounts (ConfigMap files are written out), and
// the same for the `helm test` pod.
//
//   node podspec.js TOOLS_DIR RENDERED.yaml OUT_DIR
//
// OUT_DIR/member.json, OUT_DIR/test.json:
//   {"command": [...], "env": [{"name", "value"} | {"name", "fieldPath"}],
//    "ports": {"raft": 7000, ...}, "probes": {"readiness": "/readyz", ...},
//    "mounts": {"/etc/lifeguard": "configmap" | "pvc" | "emptyDir"}, "statefulset": NAME,
//    "replicas": N}
// OUT_DIR/files/<mountPath>/<key>: ConfigMap contents.
'use strict';
const fs = require('fs');
const path = require('path');

const [tools, rendered, out] = process.argv.slice(2).map((p) => path.resolve(p));
const yaml = require(path.join(tools, 'node_modules', 'js-yaml'));
const objs = yaml.loadAll(fs.readFileSync(rendered, 'utf8')).filter((o) => o && o.kind);
const find = (kind, pred = () => true) => objs.find((o) => o.kind === kind && pred(o));

function fail(msg) {
  process.stderr.write(`podspec: ${msg}\n`);
  process.exit(1);
}

function secretValue(ref) {
  const s = find('Secret', (o) => o.metadata.name === ref.name);
  if (!s || !s.data || !(ref.key in s.data)) {
    if (ref.optional) return null;
    fail(`secret ${ref.name} key ${ref.key} is not rendered`);
  }
  return Buffer.from(s.data[ref.key], 'base64').toString('utf8');
}

function describe(podSpec, name, volumeClaims) {
  const c = podSpec.containers[0];
  const env = [];
  for (const e of c.env || []) {
    if ('value' in e) {
      env.push({ name: e.name, value: String(e.value) });
    } else if (e.valueFrom && e.valueFrom.fieldRef) {
      env.push({ name: e.name, fieldPath: e.valueFrom.fieldRef.fieldPath });
    } else if (e.valueFrom && e.valueFrom.secretKeyRef) {
      const v = secretValue(e.valueFrom.secretKeyRef);
      if (v !== null) env.push({ name: e.name, value: v });
    } else {
      fail(`env ${e.name}: unsupported source`);
    }
  }
  const mounts = {};
  for (const m of c.volumeMounts || []) {
    const vol = (podSpec.volumes || []).find((v) => v.name === m.name);
    if (vol && vol.configMap) {
      const cm = find('ConfigMap', (o) => o.metadata.name === vol.configMap.name);
      if (!cm) fail(`configMap ${vol.configMap.name} is not rendered`);
      const dir = path.join(out, 'files', name, m.mountPath);
      fs.mkdirSync(dir, { recursive: true });
      for (const [k, v] of Object.entries(cm.data)) fs.writeFileSync(path.join(dir, k), v);
      mounts[m.mountPath] = 'configmap';
    } else if (vol && vol.emptyDir) {
      mounts[m.mountPath] = 'emptyDir';
    } else if (volumeClaims.includes(m.name)) {
      mounts[m.mountPath] = 'pvc';
    } else {
      fail(`mount ${m.name}: unsupported volume`);
    }
  }
  const ports = Object.fromEntries((c.ports || []).map((p) => [p.name, p.containerPort]));
  const probes = {};
  for (const k of ['startup', 'readiness', 'liveness']) {
    const p = c[`${k}Probe`];
    if (p && p.httpGet) probes[k] = p.httpGet.path;
  }
  return { command: [...(c.command || []), ...(c.args || [])], env, mounts, ports, probes,
    runAsUser: (podSpec.securityContext || {}).runAsUser };
}

const sts = find('StatefulSet');
if (!sts) fail('no StatefulSet rendered');
const claims = (sts.spec.volumeClaimTemplates || []).map((v) => v.metadata.name);
fs.mkdirSync(out, { recursive: true });
const member = describe(sts.spec.template.spec, 'member', claims);
member.statefulset = sts.metadata.name;
member.replicas = sts.spec.replicas;
fs.writeFileSync(path.join(out, 'member.json'), JSON.stringify(member, null, 1));
const test = find('Pod', (o) => (o.metadata.annotations || {})['helm.sh/hook'] === 'test');
if (!test) fail('no helm test pod rendered');
fs.writeFileSync(path.join(out, 'test.json'),
  JSON.stringify(describe(test.spec, 'test', []), null, 1));
