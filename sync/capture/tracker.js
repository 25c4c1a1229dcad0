/* closedloop tracker (t.js). Served by the collector with its settings filled in.
 * Install: <script async src="https://COLLECTOR/t.js"></script>
 * API: closedloop('identify', {email}) · closedloop('conversion', {type, email, phone})
 *      closedloop('consent', true|false) · closedloop('pageview')
 *      closedloop('ad_consent', {ad_user_data: true|false, ad_personalization: true|false})
 *      (without that call, Google Consent Mode's ad_user_data / ad_personalization as the page
 *      set them with gtag('consent', 'default'|'update', {...}) are recorded instead)
 * No dependencies; first-party cookie _cl_vid (13 months) with localStorage as fallback. */
(function (w, d) {
  'use strict';
  var C = __CLOSEDLOOP_CONFIG__;
  var VID = '_cl_vid', SES = '_cl_ses', OK = '_cl_consent', ADS = '_cl_ads';
  var SIG = ['ad_user_data', 'ad_personalization'];
  var UTM = 'utm_source utm_medium utm_campaign utm_term utm_content utm_id utm_source_platform'.split(' ');
  var CLICK = 'gclid gbraid wbraid fbclid msclkid ttclid li_fat_id'.split(' ');
  var nav = w.navigator || {};
  var ls = null;
  try { ls = w.localStorage; ls.setItem('_cl_t', '1'); ls.removeItem('_cl_t'); } catch (e) { ls = null; }

  function now() { return Date.now(); }
  function rand() {
    var a = new Uint8Array(16), s = '', i;
    (w.crypto || w.msCrypto).getRandomValues(a);
    for (i = 0; i < a.length; i++) s += (a[i] + 256).toString(16).slice(1);
    return s;
  }
  function getCookie(name) {
    var m = d.cookie.match(new RegExp('(?:^|; )' + name + '=([^;]*)')); /* names are [A-Za-z0-9_] */
    return m ? decodeURIComponent(m[1]) : null;
  }
  function setCookie(name, value, seconds) {
    var c = name + '=' + encodeURIComponent(value) + '; Path=/; SameSite=Lax; Max-Age=' + seconds;
    if (C.cookieDomain) c += '; Domain=' + C.cookieDomain;
    if (w.location.protocol === 'https:') c += '; Secure';
    d.cookie = c;
  }
  function store(k, v) { if (ls) try { v === null ? ls.removeItem(k) : ls.setItem(k, v); } catch (e) {} }
  function load(k) { if (ls) try { return ls.getItem(k); } catch (e) {} return null; }

  function blocked() {
    if (C.honorDnt && (nav.doNotTrack === '1' || w.doNotTrack === '1')) return true;
    if (C.honorGpc && nav.globalPrivacyControl === true) return true;
    return consent === 'denied' || (C.requireConsent && consent !== 'granted');
  }
  var consent = getCookie(OK) || load(OK);

  function visitorId() {
    var id = getCookie(VID) || load(VID);
    if (!id || !/^[A-Za-z0-9_-]{8,64}$/.test(id)) id = rand();
    setCookie(VID, id, 34128000); /* 395 days = 13 months */
    store(VID, id);
    return id;
  }

  function params() {
    var out = { utm: {}, click_ids: {} }, q = new URLSearchParams(w.location.search), i, v;
    for (i = 0; i < UTM.length; i++) if ((v = q.get(UTM[i]))) out.utm[UTM[i]] = v;
    for (i = 0; i < CLICK.length; i++) if ((v = q.get(CLICK[i]))) out.click_ids[CLICK[i]] = v;
    return out;
  }

  /* Session: 30 minutes of inactivity, or a new campaign arrival, starts a new one. */
  function session(campaignKey) {
    var s = null, t = now();
    try { s = JSON.parse(load(SES) || getCookie(SES) || 'null'); } catch (e) { s = null; }
    if (!s || t - s.last > C.sessionMinutes * 60000 || (campaignKey && campaignKey !== s.campaign)) {
      s = { id: t.toString(36) + rand().slice(0, 6), campaign: campaignKey || (s && s.campaign) || '' };
    }
    s.last = t;
    store(SES, JSON.stringify(s));
    if (!ls) setCookie(SES, JSON.stringify(s), C.sessionMinutes * 60);
    return s.id;
  }

  function gaClientId() {
    var v = getCookie('_ga'), m = v && v.match(/(\d+\.\d+)$/);
    return m ? m[1] : null;
  }
  function gaSessionId() {
    var names = C.gaContainer ? ['_ga_' + C.gaContainer] : [], m, v, i;
    if (!names.length) {
      m = d.cookie.match(/(?:^|; )(_ga_[A-Z0-9]+)=/);
      if (m) names.push(m[1]);
    }
    for (i = 0; i < names.length; i++) {
      v = getCookie(names[i]);
      if (!v) continue;
      m = v.match(/^GS1\.\d+\.(\d+)\./) || v.match(/^GS2\.\d+\.s(\d+)/);
      if (m) return m[1];
    }
    return null;
  }
  /* Ad consent per signal: what the page told closedloop (cookie _cl_ads, "g"/"d"/"u"), else the
     last Consent Mode command in window.dataLayer that sets it (gtag pushes its arguments there). */
  function ok(s) { return { true: 'g', granted: 'g', false: 'd', denied: 'd' }[s] || 'u'; }
  function adConsent(b) {
    var own = getCookie(ADS) || 'uu', L = w.dataLayer || [], i, v, c, e;
    for (v = 0; v < 2; v++) {
      c = own.charAt(v);
      for (i = L.length - 1; c === 'u' && i >= 0; i--) if ((e = L[i]) && e[0] === 'consent' && e[2]) c = ok(e[2][SIG[v]]);
      b[SIG[v]] = { g: 'granted', d: 'denied' }[c]; /* undefined: left out of the JSON */
    }
  }
  function tz() { try { return Intl.DateTimeFormat().resolvedOptions().timeZone || null; } catch (e) { return null; } }

  function send(type, extra) {
    if (blocked()) return false;
    var p = params(), key = [p.utm.utm_source, p.utm.utm_medium, p.utm.utm_campaign].concat(
      CLICK.map(function (k) { return p.click_ids[k]; })).join('|').replace(/^\|+$/, '');
    var b = {
      v: 1, type: type, vid: visitorId(), ts: now(), url: w.location.href, referrer: d.referrer || '',
      sid: session(type === 'pageview' ? key : ''), utm: p.utm, click_ids: p.click_ids,
      ga_client_id: gaClientId(), ga_session_id: gaSessionId(), lang: nav.language || null, tz: tz()
    };
    if (consent) b.consent = consent;
    adConsent(b);
    for (var k in extra) if (extra[k] !== undefined && extra[k] !== null && extra[k] !== '') b[k] = extra[k];
    var body = JSON.stringify(b);
    try {
      if (nav.sendBeacon && nav.sendBeacon(C.endpoint, new Blob([body], { type: 'text/plain' }))) return true;
    } catch (e) {}
    try {
      w.fetch(C.endpoint, { method: 'POST', body: body, keepalive: true, mode: 'cors', credentials: 'omit',
        headers: { 'Content-Type': 'text/plain' } });
    } catch (e) {}
    return true;
  }

  function emailIn(form) {
    var els = form.elements, i, el;
    for (i = 0; i < els.length; i++) {
      el = els[i];
      if (el.type === 'email' || /e-?mail/i.test(el.name || '')) if (el.value && el.value.indexOf('@') > 0) return el.value;
    }
    return null;
  }
  function hidden(form, name, value) {
    if (!value) return;
    var el = form.querySelector('input[name="' + name + '"]');
    if (!el) { el = d.createElement('input'); el.type = 'hidden'; el.name = name; form.appendChild(el); }
    el.value = value;
  }
  function onSubmit(ev) {
    var form = ev.target;
    if (!form || form.tagName !== 'FORM' || form.hasAttribute('data-closedloop-ignore') || blocked()) return;
    hidden(form, 'cl_visitor_id', visitorId());
    hidden(form, 'cl_ga_client_id', gaClientId());
    var email = emailIn(form);
    if (email) send('identify', { email: email, conversion_type: 'form' });
  }

  var api = {
    pageview: function () { return send('pageview', {}); },
    identify: function (o) { return send('identify', { email: o && o.email, phone: o && o.phone }); },
    conversion: function (o) {
      o = o || {};
      return send('conversion', { conversion_type: o.type || 'other', email: o.email, phone: o.phone });
    },
    consent: function (granted) {
      consent = granted ? 'granted' : 'denied';
      if (granted) {
        setCookie(OK, consent, 34128000); store(OK, consent);
        if (!started) start();
      } else {
        setCookie(VID, '', 0); setCookie(SES, '', 0); setCookie(OK, '', 0); setCookie(ADS, '', 0);
        store(VID, null); store(SES, null); store(OK, null);
      }
    },
    ad_consent: function (o) {
      o = o || {};
      setCookie(ADS, ok(o[SIG[0]]) + ok(o[SIG[1]]), 34128000); /* later beacons carry it */
      return true;
    }
  };

  var started = false;
  function start() {
    started = true;
    send('pageview', {});
  }

  var queued = (w.closedloop && w.closedloop.q) || [];
  w.closedloop = function (name, arg) { return api[name] ? api[name](arg) : false; };
  d.addEventListener('submit', onSubmit, true);
  var push = w.history && w.history.pushState;
  if (push) {
    w.history.pushState = function () { var r = push.apply(this, arguments); send('pageview', {}); return r; };
    w.addEventListener('popstate', function () { send('pageview', {}); });
  }
  if (!blocked()) start();
  for (var i = 0; i < queued.length; i++) w.closedloop.apply(w, queued[i]);
})(window, document);
