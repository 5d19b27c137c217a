"""Who is calling. The gateway authenticates users and passes their id and roles in gRPC metadata;
services trust that metadata because only the gateway and peers can reach them (NetworkPolicy)."""

from __future__ import annotations

from dataclasses import dataclass, field

USER_ID_KEY = "x-reserva-user-id"
ROLES_KEY = "x-reserva-roles"

CLIENT, HOST, AGENT, SERVICE = "client", "host", "agent", "service"


@dataclass(frozen=True)
class Caller:
    user_id: str = ""
    roles: frozenset[str] = field(default_factory=frozenset)

    @property
    def is_agent(self) -> bool:
        return AGENT in self.roles

    @property
    def is_service(self) -> bool:
        return SERVICE in self.roles

    @property
    def is_privileged(self) -> bool:
        """Agents and peer services may act on any resource."""
        return self.is_agent or self.is_service

    def to_metadata(self) -> list[tuple[str, str]]:
        return [(USER_ID_KEY, self.user_id), (ROLES_KEY, ",".join(sorted(self.roles)))]

    @classmethod
    def from_metadata(cls, pairs) -> Caller:
        values = {k: v for k, v in (pairs or ())}
        roles = frozenset(r for r in str(values.get(ROLES_KEY, "")).split(",") if r)
        return cls(user_id=str(values.get(USER_ID_KEY, "")), roles=roles)


ANONYMOUS = Caller()
SYSTEM = Caller(user_id="system", roles=frozenset({SERVICE}))
