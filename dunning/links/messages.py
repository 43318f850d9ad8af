# ruff: noqa: RUF001  (full-width Chinese punctuation is intended)
"""The pay page's words in each language the emails speak (``en``, ``es``, ``zh_CN``).

Kept as data beside the templates: a customer who read the email in Spanish lands
on a page in Spanish. Every locale has every key (a test checks).
"""

from __future__ import annotations

# interval -> (once, every n); {n} is the count.
_INTERVALS_EN = {
    "day": ("per day", "every {n} days"),
    "week": ("per week", "every {n} weeks"),
    "month": ("per month", "every {n} months"),
    "year": ("per year", "every {n} years"),
}

MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "page_title": "Update your card",
        "heading": "Update your payment method",
        "intro": "We couldn't take your last payment. Add a card below and we'll charge it "
        "straight away.",
        "due": "Amount due",
        "plan": "Plan",
        "card_on_file": "Card on file",
        "card_ending": "{brand} ending in {last4}",
        "card_expires": "Expires {exp}",
        "card_failed": "Your last payment with this card didn't go through.",
        "no_card": "No card on file.",
        "new_card": "New card",
        "submit": "Save card and pay {amount}",
        "working": "Saving your card…",
        "secure": "Card details go straight to Stripe, our payment processor. We never see or "
        "store your card number.",
        "noscript": "This page needs JavaScript to update your card securely.",
        "card_invalid": "Those card details weren't accepted: the card number, expiry date or "
        "CVC is incomplete or wrong. Check them (type the card number as digits only, without "
        "spaces) and try again. Nothing was charged.",
        "card_unreachable": "We couldn't reach our payment processor to check your card. "
        "Nothing was charged. Please try again in a minute.",
        "result_declined": "That card was declined. Please try another card.",
        "result_failed": "Your new card is saved, but the payment didn't go through. Please try "
        "another card.",
        "result_pending": "Your new card is saved. We couldn't complete the payment just now; "
        "we'll try again shortly.",
        "result_not_saved": "We couldn't confirm your card. Please enter it again.",
        "result_unchanged": "Your card wasn't changed.",
        "paid_title": "Thank you, you're all set",
        "paid_body": "This payment has been made. There's nothing more to do.",
        "paid_card": "Paid with {card}.",
        "paid_renewal": "Your next renewal is on {date}.",
        "closed_title": "This link is no longer active",
        "closed_body": "There's nothing to pay here. If you have a question, reply to our last "
        "email.",
        "expired_title": "This link has expired",
        "expired_body": "For your security, payment links only work for a limited time. Use the "
        "link in our most recent email, or reply to it for a new one.",
        "invalid_title": "This link isn't valid",
        "invalid_body": "It may have been cut short or changed. Open the link straight from our "
        "email, or reply to it for a new one.",
        "limited_title": "Too many attempts",
        "limited_body": "Please wait a minute, then try again.",
        "unavailable_title": "Please try again shortly",
        "unavailable_body": "We couldn't reach our payment processor. Nothing was charged. "
        "Please try again in a few minutes.",
        "try_again": "Try again",
        # The renewal page (a customer link, no case): nothing is due, nothing is charged.
        "renewal_heading": "Check your card before your renewal",
        "renewal_intro": "Your subscription renews soon. Make sure the card on file is up to "
        "date, or add a new one.",
        "next_renewal": "Next renewal",
        "renews_on": "Renews on {date}",
        "card_expires_before_renewal": "This card expires before your renewal. Add a new card "
        "so your subscription continues without interruption.",
        "save_card": "Save card",
        "no_charge": "Nothing is charged now.",
        "result_saved": "Your new card is saved. We'll use it for your next renewal.",
        "saved_title": "Your card is saved",
        # The payment waits for the customer to authenticate it (3-D Secure).
        "action_heading": "Confirm your payment",
        "action_intro": "Your bank asks you to confirm this payment. It only takes a moment, "
        "and nothing else is needed.",
        "action_button": "Confirm payment",
        "action_working": "Waiting for your bank…",
        "other_card": "Or use another card",
        "result_not_authenticated": "The payment wasn't confirmed, so nothing was charged. "
        "Try again, or use another card.",
        "result_processing": "Your payment is confirmed and being processed. We'll email you "
        "once it's done.",
        "result_needs_confirmation": "Your card is saved. Your bank asks you to confirm this "
        "payment: press Confirm payment.",
    },
    "es": {
        "page_title": "Actualiza tu tarjeta",
        "heading": "Actualiza tu método de pago",
        "intro": "No pudimos cobrar tu último pago. Añade una tarjeta abajo y la cargaremos al "
        "momento.",
        "due": "Importe pendiente",
        "plan": "Plan",
        "card_on_file": "Tarjeta registrada",
        "card_ending": "{brand} terminada en {last4}",
        "card_expires": "Caduca {exp}",
        "card_failed": "Tu último pago con esta tarjeta no se completó.",
        "no_card": "No hay ninguna tarjeta registrada.",
        "new_card": "Tarjeta nueva",
        "submit": "Guardar tarjeta y pagar {amount}",
        "working": "Guardando tu tarjeta…",
        "secure": "Los datos de tu tarjeta van directamente a Stripe, nuestro procesador de "
        "pagos. Nunca vemos ni guardamos el número de tu tarjeta.",
        "noscript": "Esta página necesita JavaScript para actualizar tu tarjeta de forma segura.",
        "card_invalid": "No se aceptaron los datos de la tarjeta: el número, la fecha de "
        "caducidad o el CVC están incompletos o no son correctos. Revísalos (escribe el número "
        "solo con dígitos, sin espacios) y vuelve a intentarlo. No se ha cobrado nada.",
        "card_unreachable": "No pudimos conectar con nuestro procesador de pagos para comprobar "
        "tu tarjeta. No se ha cobrado nada. Vuelve a intentarlo en un minuto.",
        "result_declined": "Esa tarjeta fue rechazada. Prueba con otra tarjeta.",
        "result_failed": "Tu tarjeta nueva está guardada, pero el pago no se completó. Prueba "
        "con otra tarjeta.",
        "result_pending": "Tu tarjeta nueva está guardada. No pudimos completar el pago ahora "
        "mismo; lo intentaremos de nuevo en breve.",
        "result_not_saved": "No pudimos confirmar tu tarjeta. Introdúcela de nuevo.",
        "result_unchanged": "Tu tarjeta no ha cambiado.",
        "paid_title": "Gracias, todo está en orden",
        "paid_body": "Este pago ya se ha realizado. No tienes que hacer nada más.",
        "paid_card": "Pagado con {card}.",
        "paid_renewal": "Tu próxima renovación será el {date}.",
        "closed_title": "Este enlace ya no está activo",
        "closed_body": "No hay nada que pagar aquí. Si tienes alguna pregunta, responde a "
        "nuestro último correo.",
        "expired_title": "Este enlace ha caducado",
        "expired_body": "Por tu seguridad, los enlaces de pago solo funcionan durante un tiempo "
        "limitado. Usa el enlace de nuestro correo más reciente o respóndelo para recibir uno "
        "nuevo.",
        "invalid_title": "Este enlace no es válido",
        "invalid_body": "Puede que se haya cortado o modificado. Abre el enlace directamente "
        "desde nuestro correo o respóndelo para recibir uno nuevo.",
        "limited_title": "Demasiados intentos",
        "limited_body": "Espera un minuto y vuelve a intentarlo.",
        "unavailable_title": "Vuelve a intentarlo en breve",
        "unavailable_body": "No pudimos conectar con nuestro procesador de pagos. No se ha "
        "cobrado nada. Vuelve a intentarlo en unos minutos.",
        "try_again": "Volver a intentarlo",
        "renewal_heading": "Revisa tu tarjeta antes de la renovación",
        "renewal_intro": "Tu suscripción se renueva pronto. Comprueba que la tarjeta registrada "
        "esté al día o añade una nueva.",
        "next_renewal": "Próxima renovación",
        "renews_on": "Se renueva el {date}",
        "card_expires_before_renewal": "Esta tarjeta caduca antes de la renovación. Añade una "
        "tarjeta nueva para que tu suscripción continúe sin interrupciones.",
        "save_card": "Guardar tarjeta",
        "no_charge": "No se te cobrará nada ahora.",
        "result_saved": "Tu tarjeta nueva está guardada. La usaremos en tu próxima renovación.",
        "saved_title": "Tu tarjeta está guardada",
        "action_heading": "Confirma tu pago",
        "action_intro": "Tu banco te pide que confirmes este pago. Solo lleva un momento y no "
        "hace falta nada más.",
        "action_button": "Confirmar pago",
        "action_working": "Esperando a tu banco…",
        "other_card": "O usa otra tarjeta",
        "result_not_authenticated": "El pago no se confirmó, así que no se ha cobrado nada. "
        "Inténtalo de nuevo o usa otra tarjeta.",
        "result_processing": "Tu pago está confirmado y se está procesando. Te enviaremos un "
        "correo cuando termine.",
        "result_needs_confirmation": "Tu tarjeta está guardada. Tu banco pide que confirmes "
        "este pago: pulsa Confirmar pago.",
    },
    "zh_CN": {
        "page_title": "更新您的银行卡",
        "heading": "更新您的付款方式",
        "intro": "您最近一笔付款未能扣款成功。请在下方添加一张银行卡，我们会立即扣款。",
        "due": "应付金额",
        "plan": "套餐",
        "card_on_file": "已保存的银行卡",
        "card_ending": "{brand}，尾号 {last4}",
        "card_expires": "有效期至 {exp}",
        "card_failed": "您最近一次使用此卡的付款未成功。",
        "no_card": "没有已保存的银行卡。",
        "new_card": "新银行卡",
        "submit": "保存银行卡并支付 {amount}",
        "working": "正在保存您的银行卡…",
        "secure": "银行卡信息直接发送至我们的支付服务商 Stripe。我们从不查看或存储您的卡号。",
        "noscript": "此页面需要启用 JavaScript 才能安全地更新您的银行卡。",
        "card_invalid": "银行卡信息未被接受：卡号、有效期或 CVC 不完整或有误。请检查后重试"
        "（卡号只输入数字，不要加空格）。未产生任何扣款。",
        "card_unreachable": "暂时无法连接我们的支付服务商来验证您的银行卡。未产生任何扣款。"
        "请稍后再试。",
        "result_declined": "该银行卡被拒绝。请换一张银行卡再试。",
        "result_failed": "您的新银行卡已保存，但付款未成功。请换一张银行卡再试。",
        "result_pending": "您的新银行卡已保存。目前无法完成付款，我们稍后会再次尝试。",
        "result_not_saved": "我们无法确认您的银行卡。请重新输入。",
        "result_unchanged": "您的银行卡没有变更。",
        "paid_title": "谢谢，一切就绪",
        "paid_body": "这笔款项已支付，您无需再做任何操作。",
        "paid_card": "付款银行卡：{card}。",
        "paid_renewal": "下次续订日期：{date}。",
        "closed_title": "此链接已失效",
        "closed_body": "这里没有需要支付的款项。如有疑问，请回复我们最近的邮件。",
        "expired_title": "此链接已过期",
        "expired_body": "为了您的安全，付款链接仅在有限时间内有效。请使用我们最新邮件中的链接，"
        "或回复该邮件获取新链接。",
        "invalid_title": "此链接无效",
        "invalid_body": "链接可能不完整或已被修改。请直接从我们的邮件中打开链接，"
        "或回复邮件获取新链接。",
        "limited_title": "尝试次数过多",
        "limited_body": "请稍等一分钟后再试。",
        "unavailable_title": "请稍后再试",
        "unavailable_body": "暂时无法连接我们的支付服务商，未产生任何扣款。请几分钟后再试。",
        "try_again": "重试",
        "renewal_heading": "续订前请确认您的银行卡",
        "renewal_intro": "您的订阅即将续订。请确认已保存的银行卡信息是最新的，或添加一张新卡。",
        "next_renewal": "下次续订",
        "renews_on": "续订日期：{date}",
        "card_expires_before_renewal": "此卡将在续订前到期。请添加一张新卡，以免订阅中断。",
        "save_card": "保存银行卡",
        "no_charge": "现在不会扣款。",
        "result_saved": "您的新银行卡已保存，下次续订时将使用此卡。",
        "saved_title": "您的银行卡已保存",
        "action_heading": "确认您的付款",
        "action_intro": "您的银行要求您确认此笔付款。只需片刻，无需其他操作。",
        "action_button": "确认付款",
        "action_working": "正在等待您的银行…",
        "other_card": "或使用另一张银行卡",
        "result_not_authenticated": "付款未获确认，因此未产生任何扣款。"
        "请重试，或使用另一张银行卡。",
        "result_processing": "您的付款已确认，正在处理中。完成后我们会发邮件通知您。",
        "result_needs_confirmation": "您的银行卡已保存。您的银行要求您确认这笔付款："
        "请点击“确认付款”。",
    },
}

INTERVALS: dict[str, dict[str, tuple[str, str]]] = {
    "en": _INTERVALS_EN,
    "es": {
        "day": ("al día", "cada {n} días"),
        "week": ("a la semana", "cada {n} semanas"),
        "month": ("al mes", "cada {n} meses"),
        "year": ("al año", "cada {n} años"),
    },
    "zh_CN": {
        "day": ("每天", "每 {n} 天"),
        "week": ("每周", "每 {n} 周"),
        "month": ("每月", "每 {n} 个月"),
        "year": ("每年", "每 {n} 年"),
    },
}

# Stripe.js's own locale codes, so its card field speaks the page's language.
STRIPE_JS_LOCALES = {"en": "en", "es": "es", "zh_CN": "zh"}

HTML_LANG = {"en": "en", "es": "es", "zh_CN": "zh-CN"}


def interval_text(locale: str, interval: str | None, count: int | None) -> str:
    """``per month`` / ``every 3 months`` in the page's language; empty when unknown."""
    forms = INTERVALS.get(locale, _INTERVALS_EN).get(interval or "")
    if forms is None:
        return ""
    return forms[0] if (count or 1) == 1 else forms[1].format(n=count)
