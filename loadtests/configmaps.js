// k6 load test: creates and reads ConfigMaps in the root workspace of a running Canopy.
// Run with loadtests/run (it starts Canopy and passes BASE, TOKEN and CA).
import http from 'k6/http';
import { check } from 'k6';
import exec from 'k6/execution';

export const options = {
  insecureSkipTLSVerify: true,
  summaryTrendStats: ['avg', 'med', 'p(90)', 'p(99)', 'max'],
  // per-operation figures in the summary (the limits are the SIG Scalability SLOs)
  thresholds: {
    'http_req_duration{op:create}': ['p(99)<1000'],
    'http_req_duration{op:get}': ['p(99)<1000'],
    'http_reqs{op:create}': ['count>0'],
    'http_reqs{op:get}': ['count>0'],
  },
  scenarios: {
    create: { executor: 'constant-vus', vus: 8, duration: __ENV.DURATION || '20s', exec: 'create' },
    get: { executor: 'constant-vus', vus: 8, duration: __ENV.DURATION || '20s', exec: 'get', startTime: __ENV.DURATION || '20s' },
  },
};

const base = `${__ENV.BASE}/clusters/root/api/v1/namespaces/default/configmaps`;
const params = { headers: { Authorization: `Bearer ${__ENV.TOKEN}`, 'Content-Type': 'application/json' } };

export function create() {
  const name = `cm-${exec.vu.idInTest}-${exec.vu.iterationInScenario}`;
  const body = JSON.stringify({ metadata: { name }, data: { k: 'x'.repeat(256) } });
  const r = http.post(base, body, Object.assign({ tags: { op: 'create' } }, params));
  check(r, { 'created': (x) => x.status === 201 });
}

export function get() {
  const name = `cm-${exec.vu.idInTest % 8 + 1}-${exec.vu.iterationInScenario % 100}`;
  const r = http.get(`${base}/${name}`, Object.assign({ tags: { op: 'get' } }, params));
  check(r, { 'found': (x) => x.status === 200 || x.status === 404 });
}
