"""`{{ mapping|get_item:key }}`: read a dict by a key held in a variable, which Django templates cannot."""

from django import template

register = template.Library()


@register.filter
def get_item(mapping, key):
    return (mapping or {}).get(key)
