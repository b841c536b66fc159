"""What every console ModelAdmin shares: rows change only through the services and the
ledger, never by editing them in the admin."""

from django.contrib import admin


class NoEditing(admin.ModelAdmin):
    """No add, change or delete: the services (sprites) and the ledger (history) write rows.
    Facet counts would cost a query per filter choice."""

    show_facets = admin.ShowFacets.NEVER

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyAdmin(NoEditing):
    """History (ledger, events, runs): shown, never written here."""

    show_full_result_count = False  # a count(*) over the whole ledger is the slow part
