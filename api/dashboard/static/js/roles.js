// What each role may see: the one place the dashboard decides it. The API enforces the same scoping on every
// endpoint (a developer's list holds only its own workloads, a provider's only its own nodes), so this only
// keeps pages a role could never use out of its way.

export const ROLES = ["admin", "developer", "datacenter", "recycler", "gamer"];
export const PROVIDER_ROLES = ["datacenter", "recycler", "gamer"];

// page id -> the roles that see it
export const PAGE_ROLES = {
  map: ROLES,
  fleet: ["admin", ...PROVIDER_ROLES],
  jobs: ROLES,
  providers: ["admin", ...PROVIDER_ROLES],
  sustainability: ROLES,
};

export function maySee(role, pageId) {
  return (PAGE_ROLES[pageId] ?? []).includes(role);
}

/** Submitting workloads is for the people who have them: developers (and the admin). */
export function maySubmit(role) {
  return role === "developer" || role === "admin";
}

export function isProvider(role) {
  return PROVIDER_ROLES.includes(role);
}
