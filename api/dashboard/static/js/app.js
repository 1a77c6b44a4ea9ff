// The dashboard's shell: sign-in (a form, or a link /#token=...), the navigation for the signed-in role, the
// hash router (#/map, #/jobs/<id>, ...) and the live loop that refreshes the open page every couple of seconds.

import { ApiError, forgetToken, getJson, storeToken, storedToken } from "./api.js";
import { esc } from "./format.js";
import { maySee } from "./roles.js";
import fleet from "./pages/fleet.js";
import job from "./pages/job.js";
import jobs from "./pages/jobs.js";
import map from "./pages/map.js";
import providers from "./pages/providers.js";
import sustainability from "./pages/sustainability.js";

const POLL_MS = 2000;
const PAGES = [map, fleet, jobs, providers, sustainability];
const ROUTES = { ...Object.fromEntries(PAGES.map((p) => [p.id, p])), job };

const $ = (id) => document.getElementById(id);
let me = null; // {role, subject} of the signed-in caller
let current = null; // {view, timer, generation}
let generation = 0;

function tokenFromLink() {
  // /#token=... signs in; the token then leaves the address bar (and the history) at once
  const match = location.hash.match(/^#token=([^&]+)/);
  if (!match) return null;
  history.replaceState(null, "", location.pathname + location.search);
  return decodeURIComponent(match[1]);
}

function showSignIn(message) {
  stopPage();
  me = null;
  document.body.dataset.role = "";
  $("who").hidden = true;
  $("nav").innerHTML = "";
  $("page").innerHTML = "";
  $("sign-in").hidden = false;
  $("sign-in-error").hidden = !message;
  $("sign-in-error").textContent = message ?? "";
  $("live-status").textContent = "signed out";
  $("token-input").focus();
}

async function signIn(token) {
  storeToken(token);
  try {
    me = await getJson("/api/v1/me");
  } catch (error) {
    forgetToken();
    const why = error instanceof ApiError && error.status === 401 ? "That token is not valid." : `Could not sign in: ${error.message}`;
    showSignIn(why);
    return;
  }
  $("sign-in").hidden = true;
  $("who").hidden = false;
  $("who-role").textContent = me.role;
  $("who-subject").textContent = me.subject;
  document.body.dataset.role = me.role;
  renderNav();
  route();
}

function renderNav() {
  $("nav").innerHTML = PAGES.filter((p) => maySee(me.role, p.id))
    .map((p) => `<a href="#/${p.id}" data-page="${p.id}">${esc(p.title)}</a>`)
    .join("");
}

function stopPage() {
  if (current) {
    clearTimeout(current.timer);
    current.view?.unmount?.();
  }
  current = null;
}

function route() {
  if (!me) return;
  const [, id = "", ...rest] = location.hash.replace(/^#/, "").split("/");
  const first = PAGES.find((p) => maySee(me.role, p.id));
  const page = ROUTES[id];
  if (!page) {
    location.replace(`#/${first.id}`);
    return;
  }
  stopPage();
  const mine = ++generation;
  for (const a of $("nav").querySelectorAll("a")) {
    a.classList.toggle("active", a.dataset.page === (page === job ? "jobs" : page.id));
  }
  const el = $("page");
  el.dataset.page = page.id;
  if (!maySee(me.role, page === job ? "jobs" : page.id)) {
    el.innerHTML = `<section class="card refused" data-refused="${esc(page.id)}"><h1>${esc(page.title)}</h1>
      <p>The <strong>${esc(me.role)}</strong> role does not see this page.</p></section>`;
    return;
  }
  const view = page.mount(el, { me, params: rest.map(decodeURIComponent) });
  current = { view, timer: null };
  const tick = async () => {
    if (mine !== generation) return;
    try {
      await view.refresh();
      $("live-status").textContent = `live · updated ${new Date().toLocaleTimeString("en-GB", { hour12: false })}`;
      $("live-status").classList.remove("error");
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) {
        forgetToken();
        showSignIn("Your token is no longer accepted: sign in again.");
        return;
      }
      $("live-status").textContent = `could not refresh: ${error.message}`;
      $("live-status").classList.add("error");
    }
    if (mine === generation) current.timer = setTimeout(tick, POLL_MS);
  };
  tick();
}

$("sign-in-form").addEventListener("submit", (event) => {
  event.preventDefault();
  signIn($("token-input").value.trim());
  $("token-input").value = "";
});
$("sign-out").addEventListener("click", () => {
  forgetToken();
  location.hash = "";
  showSignIn();
});
window.addEventListener("hashchange", () => {
  const token = tokenFromLink();
  if (token) signIn(token);
  else route();
});

const linked = tokenFromLink();
if (linked) signIn(linked);
else if (storedToken()) signIn(storedToken());
else showSignIn();
