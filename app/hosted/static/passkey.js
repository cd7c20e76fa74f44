// The passkey ceremony, the one part of the hosted pages that needs JavaScript. Forms carrying
// data-options fetch WebAuthn options, run navigator.credentials.create/get, put the credential
// (JSON, base64url fields) into their hidden "credential" input and submit as usual.
(function () {
  'use strict';
  function dec(s) {
    s = s.replace(/-/g, '+').replace(/_/g, '/');
    while (s.length % 4) s += '=';
    const bin = atob(s);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  }
  function enc(buf) {
    const bytes = new Uint8Array(buf);
    let s = '';
    for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
    return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }
  function toJSON(cred) {
    const r = cred.response;
    const out = {
      id: cred.id, rawId: enc(cred.rawId), type: cred.type,
      clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
      response: { clientDataJSON: enc(r.clientDataJSON) },
    };
    if (cred.authenticatorAttachment) out.authenticatorAttachment = cred.authenticatorAttachment;
    if (r.attestationObject) {
      out.response.attestationObject = enc(r.attestationObject);
      if (r.getTransports) out.response.transports = r.getTransports();
    }
    if (r.authenticatorData) {
      out.response.authenticatorData = enc(r.authenticatorData);
      out.response.signature = enc(r.signature);
      if (r.userHandle) out.response.userHandle = enc(r.userHandle);
    }
    return out;
  }
  function fail(form, message) {
    let box = form.querySelector('.passkey-error');
    if (!box) {
      box = document.createElement('p');
      box.className = 'error passkey-error';
      box.setAttribute('role', 'alert');
      form.appendChild(box);
    }
    box.textContent = message;
  }
  function wire(form, create) {
    if (!form) return;
    if (!window.PublicKeyCredential) {
      fail(form, form.dataset.error || 'Passkeys are not available in this browser.');
      return;
    }
    form.addEventListener('submit', async function (event) {
      const input = form.querySelector('[name="credential"]');
      if (input.value) return;
      event.preventDefault();
      try {
        const body = new URLSearchParams();
        form.querySelectorAll('input[type="hidden"]').forEach(function (el) {
          if (el.name !== 'credential') body.set(el.name, el.value);
        });
        const answer = await fetch(form.dataset.options, {
          method: 'POST', body: body, credentials: 'same-origin', headers: { Accept: 'application/json' },
        });
        const opts = await answer.json();
        if (!answer.ok) throw new Error(opts.message || form.dataset.error);
        opts.challenge = dec(opts.challenge);
        let cred;
        if (create) {
          opts.user.id = dec(opts.user.id);
          (opts.excludeCredentials || []).forEach(function (c) { c.id = dec(c.id); });
          cred = await navigator.credentials.create({ publicKey: opts });
        } else {
          (opts.allowCredentials || []).forEach(function (c) { c.id = dec(c.id); });
          cred = await navigator.credentials.get({ publicKey: opts });
        }
        input.value = JSON.stringify(toJSON(cred));
        form.submit();
      } catch (err) {
        fail(form, (err && err.message && err.name === 'Error') ? err.message : form.dataset.error);
      }
    });
  }
  wire(document.getElementById('passkey-form'), false);
  wire(document.getElementById('passkey-register-form'), true);
})();
