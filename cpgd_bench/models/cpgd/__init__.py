"""models/cpgd"""
