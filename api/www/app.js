// SPDX-License-Identifier: MIT
// livetap dashboard: plain JavaScript, no libraries. Talks to livetap-api's
// REST endpoints and the room's WebSocket feed; every text from the network
// goes into the page through textContent, never as HTML.
'use strict';

const $ = (s) => document.querySelector(s);
const SVG = 'http://www.w3.org/2000/svg';
const st = {
  token: localStorage.getItem('livetap.token') || '',
  room: null, rooms: [], window: '1m', order: 'messages',
  ws: null, wsDelay: 500, feedCount: 0, seen: new Set(),
  rate: new Map(), // 10 s bucket -> messages
};

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}
function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (text !== undefined) e.textContent = text;
  return e;
}
function say(text, bad) {
  const m = $('#msg');
  m.textContent = text;
  m.className = bad ? 'msg bad' : 'msg';
}

async function api(path, opts = {}) {
  const headers = Object.assign({}, opts.headers || {});
  if (st.token) headers.Authorization = 'Bearer ' + st.token;
  if (opts.body) headers['Content-Type'] = 'application/json';
  const r = await fetch(path, Object.assign({}, opts, { headers }));
  let body = null;
  try { body = await r.json(); } catch (e) { body = null; }
  if (!r.ok) {
    const err = new Error((body && body.error && body.error.message) || r.statusText);
    err.status = r.status;
    throw err;
  }
  return body;
}

function roomPath(r) {
  return '/api/v1/rooms/' + encodeURIComponent(r.platform) + '/' + encodeURIComponent(r.room);
}
function fmtTime(ms) {
  const d = new Date(ms);
  return d.toLocaleTimeString([], { hour12: false });
}
function fmtNum(n) {
  n = Number(n) || 0;
  return n >= 10000 ? (n / 1000).toFixed(1) + 'k' : String(n);
}

// ---- rooms ------------------------------------------------------------

async function loadRooms() {
  let data;
  try { data = await api('/api/v1/rooms'); } catch (e) {
    if (e.status === 401) { showAuth(); }
    say('rooms: ' + e.message, true);
    return;
  }
  st.rooms = data.rooms;
  const ul = $('#rooms');
  ul.replaceChildren();
  if (!data.rooms.length) ul.append(el('li', 'empty muted', 'no rooms yet: add one below'));
  for (const r of data.rooms) {
    const li = el('li', 'room');
    li.dataset.key = r.platform + ':' + r.room;
    if (st.room && li.dataset.key === st.room.platform + ':' + st.room.room) li.classList.add('sel');
    li.append(el('span', 'name', r.title || r.room));
    const btn = el('button', '', r.enabled ? 'Stop' : 'Start');
    btn.addEventListener('click', (ev) => { ev.stopPropagation(); toggleRoom(r); });
    li.append(btn);
    li.append(el('span', 'meta', r.platform + ' · ' + r.room));
    const s = el('span', 'state ' + r.state, r.state);
    if (r.last_error) s.title = r.last_error;
    li.append(s);
    li.addEventListener('click', () => selectRoom(r));
    ul.append(li);
  }
  if (!st.room && data.rooms.length) {
    const want = decodeURIComponent(location.hash.slice(1));
    selectRoom(data.rooms.find((r) => r.platform + ':' + r.room === want) ||
      data.rooms.find((r) => r.enabled) || data.rooms[0]);
  }
}

async function toggleRoom(r) {
  try {
    if (r.enabled) await api(roomPath(r), { method: 'DELETE' });
    else await api('/api/v1/rooms', { method: 'POST', body: JSON.stringify({ platform: r.platform, room: r.room }) });
    say((r.enabled ? 'stopped ' : 'started ') + r.platform + ':' + r.room);
    loadRooms();
  } catch (e) {
    if (e.status === 401 || e.status === 403) showAuth();
    say(e.message, true);
  }
}

$('#add-room').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const r = { platform: $('#add-platform').value, room: $('#add-id').value.trim() };
  r.enabled = false;
  await toggleRoom(r);
  $('#add-id').value = '';
});

function selectRoom(r) {
  if (!r) return;
  st.room = r;
  location.hash = encodeURIComponent(r.platform + ':' + r.room);
  $('#current').textContent = (r.title ? r.title + ' — ' : '') + r.platform + ':' + r.room;
  for (const li of document.querySelectorAll('#rooms li.room'))
    li.classList.toggle('sel', li.dataset.key === r.platform + ':' + r.room);
  $('#feed').replaceChildren();
  st.seen.clear();
  st.rate.clear();
  st.feedCount = 0;
  loadHistory();
  connect();
  loadHotwords();
  loadUsers();
}

// ---- live feed --------------------------------------------------------

const FEED_MAX = 200;

const QUIET = new Set(['room_stats', 'other', 'live_start', 'live_end']);

function addFeed(m, atEnd) {
  if (QUIET.has(m.type)) return;
  if (m.msg_id && st.seen.has(m.msg_id)) return;
  if (m.msg_id) st.seen.add(m.msg_id);
  if (st.seen.size > 5000) st.seen.clear();
  const b = Math.floor((m.ts || Date.now()) / 10000);
  if (m.type === 'chat' || m.type === 'superchat' || m.type === 'gift')
    st.rate.set(b, (st.rate.get(b) || 0) + 1);
  const li = el('li', m.type);
  li.append(el('span', 't', fmtTime(m.ts)));
  li.append(el('span', 'u', (m.user && m.user.name) || (m.user && m.user.id) || '—'));
  let text = m.content || '';
  if (m.type === 'gift') {
    const x = m.extra || {};
    text = 'gift: ' + (x.gift_name || text || '?') + (x.count ? ' ×' + x.count : '');
  } else if (m.type !== 'chat' && m.type !== 'superchat') {
    text = m.type + (text ? ': ' + text : '');
  }
  li.append(el('span', 'c', text));
  const feed = $('#feed');
  if (atEnd) feed.append(li); else feed.prepend(li);
  while (feed.children.length > FEED_MAX) feed.lastChild.remove();
  st.feedCount++;
  $('#feed-count').textContent = st.feedCount + ' received';
}

async function loadHistory() {
  const r = st.room;
  try {
    const data = await api(roomPath(r) + '/messages?limit=200');
    if (r !== st.room) return;
    for (const m of data.messages) addFeed(m, true);
    drawRate();
  } catch (e) { say('messages: ' + e.message, true); }
}

function connect() {
  if (st.ws) { st.ws.onclose = null; st.ws.close(); }
  const r = st.room;
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  let url = proto + '//' + location.host + roomPath(r) + '/live';
  if (st.token) url += '?token=' + encodeURIComponent(st.token);
  const ws = new WebSocket(url);
  st.ws = ws;
  const state = $('#feed-state');
  ws.onopen = () => { st.wsDelay = 500; state.textContent = 'live'; state.className = 'pill small ok'; };
  ws.onmessage = (ev) => {
    try { addFeed(JSON.parse(ev.data)); } catch (e) { /* not a message */ }
  };
  ws.onclose = () => {
    state.textContent = 'reconnecting'; state.className = 'pill small bad';
    if (r !== st.room) return;
    setTimeout(() => { if (r === st.room) connect(); }, st.wsDelay);
    st.wsDelay = Math.min(st.wsDelay * 2, 10000);
  };
}

// ---- charts -----------------------------------------------------------

async function loadHotwords() {
  const r = st.room;
  if (!r) return;
  try {
    const data = await api(roomPath(r) + '/hotwords?window=' + st.window + '&limit=15');
    if (r === st.room) drawHotwords(data.words);
  } catch (e) { say('hot words: ' + e.message, true); }
}

function drawHotwords(words) {
  const g = $('#hotwords');
  g.replaceChildren();
  if (!words.length) {
    g.append(svg('text', { x: 200, y: 150, 'text-anchor': 'middle', class: 'num' }, 'no words in this window yet'));
    return;
  }
  const max = Math.max(...words.map((w) => w.count), 1);
  const h = 300 / Math.max(words.length, 8);
  words.forEach((w, i) => {
    const y = i * h;
    const bw = Math.max(2, (w.count / max) * 250);
    g.append(svg('text', { x: 110, y: y + h * 0.68, 'text-anchor': 'end', class: 'word' }, w.word));
    g.append(svg('rect', { x: 118, y: y + h * 0.15, width: bw, height: h * 0.7, rx: 3,
      class: 'bar' + (w.trend > 1.5 ? ' up' : '') }));
    g.append(svg('text', { x: 122 + bw, y: y + h * 0.68, class: 'num' }, fmtNum(w.count)));
  });
}

function drawRate() {
  const g = $('#rate');
  g.replaceChildren();
  const now = Math.floor(Date.now() / 10000);
  const vals = [];
  for (let b = now - 29; b <= now; b++) vals.push(st.rate.get(b) || 0);
  for (const k of st.rate.keys()) if (k < now - 60) st.rate.delete(k);
  const max = Math.max(...vals, 1);
  const pts = vals.map((v, i) => [i * (400 / 29), 100 - (v / max) * 90]);
  const d = 'M0,100 ' + pts.map((p) => 'L' + p[0].toFixed(1) + ',' + p[1].toFixed(1)).join(' ') + ' L400,100 Z';
  g.append(svg('line', { x1: 0, y1: 100, x2: 400, y2: 100, class: 'axis' }));
  g.append(svg('path', { d, class: 'area' }));
  g.append(svg('text', { x: 396, y: 12, 'text-anchor': 'end', class: 'num' },
    vals[vals.length - 1] + ' now · peak ' + max));
}

async function loadUsers() {
  const r = st.room;
  if (!r) return;
  try {
    const data = await api(roomPath(r) + '/users?order=' + st.order + '&limit=10');
    if (r !== st.room) return;
    const tb = $('#users tbody');
    tb.replaceChildren();
    for (const u of data.users) {
      const tr = el('tr');
      tr.append(el('td', '', u.name || u.id), el('td', '', fmtNum(u.messages)), el('td', '', fmtNum(u.gift_value)));
      tb.append(tr);
    }
    if (!data.users.length) {
      const tr = el('tr');
      const td = el('td', 'muted', 'nobody yet');
      td.colSpan = 3;
      tr.append(td);
      tb.append(tr);
    }
  } catch (e) { say('users: ' + e.message, true); }
}

function tabs(sel, attr, set) {
  for (const b of document.querySelectorAll(sel + ' button')) {
    b.addEventListener('click', () => {
      for (const o of document.querySelectorAll(sel + ' button')) o.classList.toggle('on', o === b);
      set(b.dataset[attr]);
    });
  }
}
tabs('#windows', 'w', (w) => { st.window = w; loadHotwords(); });
tabs('#orders', 'o', (o) => { st.order = o; loadUsers(); });

// ---- health and auth ---------------------------------------------------

async function loadHealth() {
  const h = $('#health');
  try {
    const r = await fetch('/healthz');
    const b = await r.json();
    h.textContent = r.ok ? 'healthy' : 'down: ' + (b.redis.ok ? '' : 'Redis ') + (b.postgres.ok ? '' : 'PostgreSQL');
    h.className = 'pill ' + (r.ok ? 'ok' : 'bad');
  } catch (e) { h.textContent = 'API unreachable'; h.className = 'pill bad'; }
}

function showWho() {
  $('#who').textContent = st.token ? (st.token.includes('.') ? 'admin' : 'API key') : 'read-only';
  $('#auth-btn').textContent = st.token ? 'Sign out' : 'Sign in';
}
function showAuth() { if (!st.token && !$('#auth-dialog').open) $('#auth-dialog').showModal(); }

$('#auth-btn').addEventListener('click', () => {
  if (st.token) {
    st.token = '';
    localStorage.removeItem('livetap.token');
    showWho();
    if (st.room) connect();
  } else {
    $('#auth-dialog').showModal();
  }
});
$('#auth-cancel').addEventListener('click', () => $('#auth-dialog').close());
$('#auth-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const pw = $('#auth-password').value, key = $('#auth-key').value.trim();
  try {
    if (pw) {
      const r = await api('/api/v1/auth/login', { method: 'POST', body: JSON.stringify({ password: pw }) });
      st.token = r.token;
    } else if (key) {
      st.token = key;
    }
    localStorage.setItem('livetap.token', st.token);
    $('#auth-password').value = '';
    $('#auth-key').value = '';
    $('#auth-dialog').close();
    showWho();
    say('signed in');
    loadRooms();
    if (st.room) connect();
  } catch (e) { say('sign in: ' + e.message, true); }
});

// ---- start ------------------------------------------------------------

showWho();
loadHealth();
loadRooms();
setInterval(loadRooms, 5000);
setInterval(loadHotwords, 2000);
setInterval(loadUsers, 5000);
setInterval(drawRate, 1000);
setInterval(loadHealth, 10000);
