from django.urls import path

app_name = "sprites"
urlpatterns: list = []
