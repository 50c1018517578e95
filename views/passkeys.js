// Drives the passkey buttons: asks the server for WebAuthn options, lets the browser talk to the
// authenticator (@simplewebauthn/browser, served from our origin), posts the answer back and
// follows where the server says to go. Nothing inline: the pages' CSP allows scripts from 'self'.
(() => {
  const button = document.getElementById('passkey-button');
  const status = document.getElementById('passkey-status');
  const webauthn = window.SimpleWebAuthnBrowser;
  if (!button || !status) return;
  if (!webauthn || !webauthn.browserSupportsWebAuthn()) {
    status.textContent = 'This browser cannot use passkeys.';
    return;
  }

  async function post(url, body) {
    const response = await fetch(url, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify(body ?? {}),
    });
    const json = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(json.error_description || 'The passkey did not work. Try again.');
    return json;
  }

  button.hidden = false;
  button.addEventListener('click', async () => {
    button.disabled = true;
    status.textContent = '';
    try {
      const optionsJSON = await post(button.dataset.optionsUrl);
      const answer =
        button.dataset.mode === 'register'
          ? await webauthn.startRegistration({ optionsJSON })
          : await webauthn.startAuthentication({ optionsJSON });
      const result = await post(button.dataset.verifyUrl, answer);
      window.location.assign(result.location);
    } catch (error) {
      status.textContent = error instanceof Error ? error.message : String(error);
      button.disabled = false;
    }
  });
})();
