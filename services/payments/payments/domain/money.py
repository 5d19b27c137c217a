"""Money in integer minor units of an ISO 4217 currency. Never floating point."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from payments.domain.errors import CurrencyMismatch, InvalidAmount, InvalidCurrency

# ISO 4217 minor-unit exponents of the currencies the platform accepts. A code missing here is
# refused (INVALID_CURRENCY) rather than guessed: a wrong exponent charges 100x too much or too little.
CURRENCY_EXPONENTS: dict[str, int] = {
    # exponent 0
    "CLP": 0, "ISK": 0, "JPY": 0, "KRW": 0, "VND": 0, "XAF": 0, "XOF": 0, "UGX": 0,
    # exponent 2
    "AED": 2, "AUD": 2, "BRL": 2, "CAD": 2, "CHF": 2, "CNY": 2, "CZK": 2, "DKK": 2, "EUR": 2,
    "GBP": 2, "HKD": 2, "HUF": 2, "ILS": 2, "INR": 2, "MXN": 2, "NOK": 2, "NZD": 2, "PLN": 2,
    "RON": 2, "SEK": 2, "SGD": 2, "THB": 2, "TRY": 2, "USD": 2, "ZAR": 2,
    # exponent 3
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
}  # fmt: skip

MAX_AMOUNT_MINOR = 10**11


def exponent_of(currency_code: str) -> int:
    """The ISO 4217 exponent of a currency; InvalidCurrency for an unknown code."""
    try:
        return CURRENCY_EXPONENTS[currency_code]
    except KeyError:
        raise InvalidCurrency(
            f"currency_code {currency_code!r} is not a supported ISO 4217 code "
            "(three upper-case letters, for example 'EUR')"
        ) from None


@dataclass(frozen=True, order=True)
class Money:
    """An amount in the minor unit of `currency` (cents for USD, yen for JPY, fils for KWD)."""

    amount_minor: int
    currency: str

    def __post_init__(self) -> None:
        exponent_of(self.currency)
        if not isinstance(self.amount_minor, int) or isinstance(self.amount_minor, bool):
            raise InvalidAmount("amount_minor must be an integer number of minor units")

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(0, currency)

    @classmethod
    def of(cls, amount_minor: int, currency: str, field: str = "amount") -> Money:
        """A positive amount from a request: 1 to 10^11 minor units of a known currency."""
        money = cls(amount_minor, currency)
        if not 1 <= amount_minor <= MAX_AMOUNT_MINOR:
            raise InvalidAmount(f"{field}.amount_minor must be between 1 and {MAX_AMOUNT_MINOR}, got {amount_minor}")
        return money

    @classmethod
    def from_decimal(cls, value: Decimal | str, currency: str) -> Money:
        """Major units ("12.50") to minor units; more decimals than the currency has is an error."""
        scaled = Decimal(value).scaleb(exponent_of(currency))
        if scaled != scaled.to_integral_value():
            raise InvalidAmount(f"{value} has more decimals than {currency} allows ({exponent_of(currency)})")
        return cls(int(scaled), currency)

    @property
    def exponent(self) -> int:
        return exponent_of(self.currency)

    def to_decimal(self) -> Decimal:
        return Decimal(self.amount_minor).scaleb(-self.exponent)

    def _same(self, other: Money) -> None:
        if other.currency != self.currency:
            raise CurrencyMismatch(f"amount is in {other.currency} but the payment is in {self.currency}")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount_minor + other.amount_minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount_minor - other.amount_minor, self.currency)

    def __str__(self) -> str:
        return f"{self.to_decimal():.{self.exponent}f} {self.currency}"
