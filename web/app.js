// The page of `t3d serve`: plain DOM code over the server's JSON API, NiiVue (global `niivue`) for the slices.
// Text from the index (ids, reports) is only ever set as textContent, never as HTML.
const token = new URLSearchParams(location.search).get('token');
const auth = token ? { Authorization: `Bearer ${token}` } : {};
const $ = (id) => document.getElementById(id);
let info;
let listOffset = 0;

async function api(path, options = {}) {
  const r = await fetch(path, { ...options, headers: { ...auth, ...(options.headers ?? {}) } });
  const body = await r.json().catch(() => ({ error: `${r.status} ${r.statusText}` }));
  if (!r.ok) throw Object.assign(new Error(body.error ?? `${r.status} ${r.statusText}`), { body });
  return body;
}

function showError(e) {
  $('error').textContent = e ? String(e.message ?? e) : '';
  $('error').hidden = !e;
}

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

const nv = new niivue.Niivue({
  backColor: [0, 0, 0, 1],
  show3Dcrosshair: false,
  isResizeCanvas: true,
  crosshairColor: [1, 0.2, 0.2, 0.6],
  crosshairWidth: 1,
});

/** Fetches the volume first so that the server's own message (e.g. a PACS case) replaces "loading …". */
async function showVolume(url, what) {
  $('status').textContent = `loading ${what}…`;
  $('viewer-box').dataset.loaded = '';
  const r = await fetch(url, { headers: auth });
  if (!r.ok) {
    const body = await r.json().catch(() => ({ error: `${r.status} ${r.statusText}` }));
    $('viewer-box').dataset.loaded = 'none';
    $('status').textContent = `${what}: no slices to show: ${body.error ?? r.statusText}`;
    return;
  }
  const local = URL.createObjectURL(await r.blob());
  try {
    await nv.loadVolumes([{ url: local, name: 'volume.nii', cal_min: -1000, cal_max: 400 }]);
  } finally {
    URL.revokeObjectURL(local);
  }
  nv.setSliceType(nv.sliceTypeMultiplanar);
  $('viewer-box').dataset.loaded = what;
  $('status').textContent =
    `${what}: scroll the mouse wheel over a view to move through its slices; click to move the crosshair.`;
}

function caseItem(c, onOpen) {
  const li = el('li');
  li.dataset.id = c.id;
  li.append(el('span', c.id, 'id'));
  if (c.similarity !== undefined) li.append(' ', el('span', c.similarity.toFixed(3), 'score'));
  if (c.split === 'pacs' && c.report) li.append(el('div', c.report, 'muted'));
  li.append(el('div', c.labels.length ? c.labels.join(', ') : 'no findings', 'muted'));
  li.addEventListener('click', () => onOpen(c.id).catch(showError));
  return li;
}

function showFindings(rows) {
  const body = $('findings').tBodies[0];
  body.replaceChildren(
    ...rows.map((f) => {
      const tr = el('tr');
      if (f.positive) tr.className = 'positive';
      const bar = el('td', undefined, 'bar');
      const fill = el('span');
      fill.style.width = `${Math.round(100 * f.probability)}%`;
      bar.append(fill);
      bar.title = f.probability.toFixed(3);
      const call = f.positive === null ? '—' : f.positive ? 'positive' : 'negative';
      const rate = (v) => (v === null || v === undefined ? '—' : v.toFixed(2));
      const rates = el('td', `${rate(f.sensitivity)} / ${rate(f.specificity)} / ${rate(f.ppv)}`, 'rates');
      tr.append(el('td', f.label), bar, el('td', `${call} (${f.probability.toFixed(2)})`), rates);
      return tr;
    }),
  );
}

/** An indexed case's findings: its stored probabilities, called at the checkpoint's validated thresholds. */
function findingsOf(c) {
  return info.labelNames.map((label, l) => {
    const p = c.findings[label] ?? 0;
    const t = info.thresholds[l];
    const threshold = t === 'Infinity' ? Infinity : t;
    const rates = info.operating?.perLabel[l] ?? {};
    return {
      label,
      probability: p,
      positive: threshold === null ? null : p >= threshold,
      sensitivity: rates.sensitivity ?? null,
      specificity: rates.specificity ?? null,
      ppv: rates.ppv ?? null,
    };
  });
}

async function showSimilar(id) {
  const hits = await api(`/api/similar?id=${encodeURIComponent(id)}&k=5`);
  $('similar').replaceChildren(...hits.map((h) => caseItem(h, openCase)));
}

async function openCase(id) {
  showError();
  showWarnings([]);
  const c = await api(`/api/case?id=${encodeURIComponent(id)}`);
  $('case').hidden = false;
  $('case-title').textContent = c.id;
  // a cache's cases carry their labels CSV; scans and PACS series have none, their labels are the positive calls
  const labelled = c.split !== 'scans' && c.split !== 'pacs';
  $('case-meta').textContent =
    `split ${c.split} · ${labelled ? 'reference labels' : 'called findings'}: ${c.labels.length ? c.labels.join(', ') : 'none'}`;
  $('report').textContent = c.report || '(no report)';
  showFindings(findingsOf(c));
  await Promise.all([showVolume(`/api/volume?id=${encodeURIComponent(id)}`, c.id).catch(showError), showSimilar(id)]);
}

/** The scan checks' warnings on an upload, each fix the server accepts offered as a button that analyses again. */
function showWarnings(warnings, file, options) {
  const list = $('warnings');
  list.replaceChildren(
    ...(warnings ?? []).map((w) => {
      const li = el('li', `${w.severity === 'refuse' ? 'refused' : 'warning'} [${w.code}] ${w.message}`, w.severity);
      if (w.fix) {
        const fix = w.fix.option === 'intercept' ? { intercept: w.fix.value } : { force: 1 };
        const label = w.fix.option === 'intercept' ? `analyse again with intercept ${w.fix.value}` : 'analyse anyway';
        const b = el('button', label);
        b.type = 'button';
        b.addEventListener('click', () => upload(file, { ...options, ...fix }).catch(uploadFailed));
        li.append(' ', b);
      }
      return li;
    }),
  );
  list.hidden = !warnings?.length;
}

function uploadFailed(e) {
  showError(e);
  $('status').textContent = 'upload failed';
}

async function upload(file, options = {}) {
  showError();
  showWarnings([]);
  $('status').textContent = `uploading and analysing ${file.name}…`;
  const query = new URLSearchParams(Object.entries(options).map(([k, v]) => [k, String(v)])).toString();
  let a;
  try {
    a = await api(`/api/upload${query ? `?${query}` : ''}`, {
      method: 'POST',
      body: file,
      headers: { 'content-type': 'application/octet-stream' },
    });
  } catch (e) {
    showWarnings(e.body?.warnings, file, options);
    throw e;
  }
  showWarnings(a.warnings, file, options);
  $('case').hidden = false;
  $('case-title').textContent = file.name;
  const s = a.seconds;
  $('case-meta').textContent =
    `uploaded · preset ${a.preset} · ${(s.read + s.preprocess + s.encode + s.score).toFixed(2)} s` +
    (query ? ` · ${query.replace('&', ', ')}` : '');
  $('report').textContent = '(an uploaded scan has no report; see the similar cases)';
  showFindings(a.findings);
  await Promise.all([showVolume(`/api/upload/volume?id=${a.id}`, file.name), showSimilar(a.id)]);
}

async function listCases(more) {
  listOffset = more ? listOffset + 50 : 0;
  const label = $('label').value;
  const cases = await api(
    `/api/cases?limit=50&offset=${listOffset}${label ? `&label=${encodeURIComponent(label)}` : ''}`,
  );
  $('list-title').textContent = label ? `Cases with ${label}` : 'Cases';
  const items = cases.map((c) => caseItem(c, openCase));
  if (more) $('list').append(...items);
  else $('list').replaceChildren(...items);
  $('more').hidden = cases.length < 50;
}

async function search(text) {
  showError();
  const label = $('label').value;
  const hits = await api(
    `/api/search?q=${encodeURIComponent(text)}&k=20${label ? `&label=${encodeURIComponent(label)}` : ''}`,
  );
  $('list-title').textContent = `Best matches for “${text}”`;
  $('list').replaceChildren(...hits.map((h) => caseItem(h, openCase)));
  $('more').hidden = true;
}

async function main() {
  await nv.attachTo('viewer');
  info = await api('/api/info');
  $('model').textContent = `checkpoint ${info.checkpointId} · ${info.cases} indexed cases`;
  const op = info.operating;
  $('calls-note').textContent = op
    ? `${info.note} Thresholds: ${op.rule}; on the evaluation's test volumes they call ` +
      `${op.callsPerVolume.toFixed(1)} findings per volume against ${op.labelsPerVolume.toFixed(1)} reference labels.`
    : `${info.note} This checkpoint has no zero-shot evaluation: probabilities only.`;
  $('label').append(
    ...info.labelNames.map((l) => {
      const o = el('option', l);
      o.value = l;
      return o;
    }),
  );
  $('search-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const text = $('query').value.trim();
    (text ? search(text) : listCases(false)).catch(showError);
  });
  $('label').addEventListener('change', () =>
    ($('query').value.trim() ? search($('query').value.trim()) : listCases(false)).catch(showError),
  );
  $('more').addEventListener('click', () => listCases(true).catch(showError));
  $('upload').addEventListener('change', () => {
    const f = $('upload').files[0];
    if (f) upload(f).catch(uploadFailed);
  });
  await listCases(false);
  document.body.dataset.ready = 'true';
}

main().catch(showError);
